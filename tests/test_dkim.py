"""DKIM: messages are signed when a key is configured, List-Unsubscribe-Post included."""

from __future__ import annotations

import base64
import re
from datetime import date

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.config import get_settings
from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.outbox import OutboxTransport
from newsletter.delivery.outgoing import Outgoing
from newsletter.delivery.transports import transport_from_settings
from newsletter.errors import ConfigError
from newsletter.message.compose import compose
from tests.helpers import paper, set_env, store_papers, subscribe
from tests.smtp_server import LocalSMTPServer


@pytest.fixture(scope="module")
def key_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def verifies(data: bytes, public: bytes) -> bool:
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"digest._domainkey.example.org."
        return record

    return dkim.verify(data, dnsfunc=dns)


def message():
    return compose(
        sender="arXiv Digest <digest@example.org>",
        to="ada@example.net",
        subject="arXiv digest 2026-11-27: 3 new papers in SLAM",
        html="<p>Hello</p>",
        text="Hello",
        message_id="<abc@example.org>",
        list_id="arXiv Digest <digest.example.org>",
        unsubscribe_url="https://digest.example.org/unsubscribe/token",
        unsubscribe_mailto="mailto:digest@example.org?subject=unsubscribe",
    )


def signed_headers(data: bytes) -> list[str]:
    header = re.search(rb"DKIM-Signature:(.*?)\r?\n(?=\S)", data, re.S).group(1)
    tags = dict(
        t.strip().split("=", 1) for t in re.sub(rb"\s+", b"", header).decode().split(";") if t
    )
    return tags["h"].lower().split(":")


def test_signature_covers_the_unsubscribe_headers(key_pair, tmp_path):
    private, public = key_pair
    signer = DkimSigner("digest", "example.org", private)
    (result,) = OutboxTransport(tmp_path, signer=signer).send(
        [Outgoing.of(1, message(), "ada@example.net")]
    )
    data = (tmp_path / result.detail.rsplit("/", 1)[1]).read_bytes()
    assert data.startswith(b"DKIM-Signature:")
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= set(
        signed_headers(data)
    )
    assert verifies(data, public)
    tampered = data.replace(b"3 new papers", b"9 new papers")
    assert not verifies(tampered, public)


def test_messages_arrive_signed_through_smtp(
    cli, settings, example_topics, key_pair, tmp_path, monkeypatch
):
    private, public = key_pair
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(private)
    subscribe(cli, "ada@example.net", "SLAM")
    store_papers(settings, "SLAM", paper(1))
    with LocalSMTPServer() as smtp:
        set_env(
            monkeypatch,
            smtp_url=smtp.url,
            dkim_key_file=str(key_file),
            dkim_domain="example.org",
            **{"from": "arXiv Digest <digest@example.org>"},
        )
        cli("send", "--date", date(2026, 11, 27).isoformat())
        (received,) = smtp.messages
    assert verifies(received.raw, public)


def test_an_unreadable_key_is_a_clear_error(settings, monkeypatch, tmp_path):
    set_env(monkeypatch, dkim_key_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="NEWSLETTER_DKIM_KEY_FILE: cannot read"):
        transport_from_settings(get_settings())
