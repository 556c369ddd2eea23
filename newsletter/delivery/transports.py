"""Which transport the settings choose: the SMTP relay when NEWSLETTER_SMTP_URL is set, else
the outbox folder; DKIM-signed and paced when those are set."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.outbox import OutboxTransport
from newsletter.delivery.outgoing import Transport
from newsletter.delivery.pacing import PacedTransport, SendPace
from newsletter.delivery.smtp import SMTPTransport

if TYPE_CHECKING:
    from newsletter.config import Settings

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- composing


# -------------------------------------------------------------------------- the interface


def transport_from_settings(settings: Settings) -> Transport:
    """The SMTP relay when NEWSLETTER_SMTP_URL is set, else the outbox folder; DKIM-signed
    when NEWSLETTER_DKIM_KEY_FILE is set."""
    signer = DkimSigner.from_settings(settings)
    smtp_url = settings.smtp_url.get_secret_value().strip() if settings.smtp_url else ""
    transport: Transport
    if smtp_url:
        transport = SMTPTransport(
            smtp_url,
            timeout=settings.smtp_timeout,
            signer=signer,
            pipelining=settings.smtp_pipelining,
        )
    else:
        transport = OutboxTransport(
            settings.outbox_dir or settings.var_dir / "outbox", signer=signer
        )
    if settings.send_rate > 0:
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        transport = PacedTransport(transport, SendPace(settings.send_rate, redis_url))
    return transport


# ------------------------------------------------------------------------------ DKIM


# ------------------------------------------------------------------------------ the outbox


# ---------------------------------------------------------------------------------- SMTP
