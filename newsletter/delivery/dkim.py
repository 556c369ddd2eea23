"""DKIM signing (rsa-sha256, relaxed/relaxed) of a message's final bytes, with the key file
named by NEWSLETTER_DKIM_KEY_FILE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dkim

from newsletter.config import Settings
from newsletter.errors import ConfigError

DKIM_SIGNED_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
)  # fmt: skip
"""dkimpy's default list leaves out List-Unsubscribe-Post; RFC 8058 wants both signed."""


@dataclass(frozen=True)
class DkimSigner:
    """Adds a DKIM-Signature (rsa-sha256, relaxed/relaxed) to a message's final bytes."""

    selector: str
    domain: str
    private_key: bytes = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimSigner | None:
        if settings.dkim_key_file is None:
            return None
        try:
            key = Path(settings.dkim_key_file).read_bytes()
        except OSError as error:
            raise ConfigError(
                f"NEWSLETTER_DKIM_KEY_FILE: cannot read {settings.dkim_key_file} ({error.strerror})"
            ) from error
        return cls(settings.dkim_selector, settings.dkim_domain or settings.sender_domain, key)

    def sign(self, data: bytes) -> bytes:
        linesep = b"\r\n" if b"\r\n" in data[:2000] else b"\n"
        try:
            signature = dkim.sign(
                data,
                self.selector.encode(),
                self.domain.encode(),
                self.private_key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=[name.encode() for name in DKIM_SIGNED_HEADERS],
                linesep=linesep,
            )
        except dkim.DKIMException as error:
            raise ConfigError(
                f"DKIM signing failed (check NEWSLETTER_DKIM_KEY_FILE): {error}"
            ) from error
        return signature + data


def _signed(signer: DkimSigner | None, data: bytes) -> bytes:
    return signer.sign(data) if signer is not None else data
