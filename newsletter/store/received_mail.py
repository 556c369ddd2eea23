"""Mail that came back to the digest's address, remembered so it is acted on once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import (
    ReceivedMail,
)


def mail_was_read(session: Session, key: str) -> bool:
    """Whether a received message (by `mailboxes.message_key`) was acted on already."""
    return session.scalar(select(ReceivedMail.id).where(ReceivedMail.key == key)) is not None


def remember_mail(session: Session, key: str, kind: str) -> None:
    session.add(ReceivedMail(key=key, kind=kind))
    session.flush()  # a copy later in the same mailbox is then skipped
