"""Each claimed row's message: its segment's body rendered once per process, encoded once into a
`MessageTemplate`, and the subscriber's address, Message-ID and links substituted in.

Nothing is rendered or encoded per message, and a message's bytes exist only while it is being
sent. An address with a non-ASCII local part is the exception: its UTF-8 headers are composed
whole, the slow way, which knows how.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.delivery.outgoing import Outgoing
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.digest.segments import SegmentKey
from newsletter.message.addresses import smtp_address
from newsletter.message.compose import compose, mailto_for, message_bytes
from newsletter.message.mail_merge import MessageTemplate
from newsletter.models import MailFormat
from newsletter.render.email import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    WEB_VERSION_PLACEHOLDER,
    RenderedBody,
    personalise,
    render_email,
)
from newsletter.store import ClaimedDelivery
from newsletter.tokens import DigestLinks

BODY_FIELDS = {
    "unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER,
    "preferences_url": PREFERENCES_PLACEHOLDER,
    "web_version_url": WEB_VERSION_PLACEHOLDER,
}
"""The per-subscriber links of a rendered body, by the name `MessageTemplate` fills in."""


class MessageBuilder:
    """One digest's messages, for one sending process; keeps its segments' templates.

    A process keeps one `MessageTemplate` per segment and format it has sent to (about one
    message's size each, a few hundred at most), so rows claimed in any order never render twice.
    """

    def __init__(self, settings: Settings, digest_id: int, edition: Edition | None = None) -> None:
        self.settings = settings
        self.digest_id = digest_id
        self.edition = edition
        self._links: DigestLinks | None = None
        self._templates: dict[tuple[SegmentKey, MailFormat], MessageTemplate] = {}
        self._bodies: OrderedDict[SegmentKey, RenderedBody] = OrderedDict()
        # The Date of this sender's messages: when it began (headers are composed once).
        self._date = datetime.now(UTC)
        self._sender = settings.sender_email  # a property that parses NEWSLETTER_FROM: once

    def prepare(self, session: Session, rows: list[ClaimedDelivery]) -> None:
        """Read what `message` needs for these rows: the digest's edition on first use (unless
        it was given), the stored translations of languages not seen before."""
        if not rows:
            return
        settings = self.settings
        if self.edition is None:
            digest = store.digest_by_id(session, self.digest_id)
            self.edition = Edition.read(session, digest, EditionOptions.from_settings(settings))
        if self._links is None:
            issue_date = self.edition.issue_date
            self._links = DigestLinks(settings.base_url, settings.secret(), issue_date)
        self.edition.load_languages(session, {row.language for row in rows})

    def message(self, row: ClaimedDelivery) -> Outgoing:
        """One subscriber's message: their segment's template with their values substituted
        (once `prepare` has read what the row needs)."""
        key = (row.topic_ids, row.language)
        unsubscribe, preferences, web_version = self._links.links(row.public_id)
        message_id = row.message_id if row.message_id.startswith("<") else f"<{row.message_id}>"
        mailto = mailto_for(self._sender, unsubscribe.rsplit("/", 1)[1])
        recipient = smtp_address(row.email)  # an internationalised domain in IDNA
        if recipient.isascii():
            data = self._template(key, row.format).bytes_for(
                {
                    "to": recipient,
                    "message_id": message_id,
                    "unsubscribe_url": unsubscribe,
                    "unsubscribe_mailto": mailto,
                    "preferences_url": preferences,
                    "web_version_url": web_version,
                }
            )
        else:  # a non-ASCII local part: UTF-8 headers, composed the slow way, which knows how
            body = personalise(self._body(key), unsubscribe, preferences, web_version)
            composed = self._compose(recipient, message_id, (unsubscribe, mailto), body, row.format)
            data = message_bytes(composed)
        return Outgoing(row.delivery_id, recipient, self._sender, message_id, data)

    def _template(self, key: SegmentKey, mail_format: MailFormat) -> MessageTemplate:
        """The segment's message in this format (plain text alone: the same text part)."""
        template = self._templates.get((key, mail_format))
        if template is None:
            body = self._body(key)
            settings = self.settings
            template = self._templates[(key, mail_format)] = MessageTemplate.build(
                sender=settings.from_address,
                subject=body.subject,
                html_body=body.html if mail_format == MailFormat.html else None,
                text_body=body.text,
                list_id=settings.list_id,
                body_fields=BODY_FIELDS,
                date=self._date,
            )
        return template

    def _body(self, key: SegmentKey) -> RenderedBody:
        """The segment's rendered body; the last few kept (templates are what is reused)."""
        body = self._bodies.get(key)
        if body is None:
            content = self.edition.content(*key)
            body = render_email(content, sender_name=self.settings.sender_name)
            self._bodies[key] = body
            if len(self._bodies) > 4:
                self._bodies.popitem(last=False)
        return body

    def _compose(
        self,
        to: str,
        message_id: str,
        unsubscribe: tuple[str, str],
        body: RenderedBody,
        mail_format: MailFormat,
    ):
        """The message composed whole; `unsubscribe` is (https URL, mailto)."""
        settings = self.settings
        return compose(
            sender=settings.from_address,
            to=to,
            subject=body.subject,
            html=body.html if mail_format == MailFormat.html else None,
            text=body.text,
            message_id=message_id,
            list_id=settings.list_id,
            unsubscribe_url=unsubscribe[0],
            unsubscribe_mailto=unsubscribe[1],
            date=self._date,
        )
