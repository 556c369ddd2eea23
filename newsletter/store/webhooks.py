"""Webhooks and their deliveries: the operator's endpoints, and one row per event per endpoint,
written in the transaction that made the event (an outbox: what rolls back tells nobody, what
commits is posted later, whatever happens to the process that made it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from newsletter.errors import InvalidInput
from newsletter.intake.webhooks import WebhookSpec, envelope
from newsletter.models import Subscriber, Webhook, WebhookDelivery, utcnow

PENDING, SENT, FAILED = "pending", "sent", "failed"


def add_webhook(session: Session, spec: WebhookSpec, secret: str) -> Webhook:
    webhook = Webhook(url=spec.url, events=list(spec.events), secret=secret)
    session.add(webhook)
    session.flush()
    return webhook


def list_webhooks(session: Session) -> list[Webhook]:
    return list(session.scalars(select(Webhook).order_by(Webhook.id)))


def webhook_by_id(session: Session, webhook_id: int) -> Webhook:
    webhook = session.get(Webhook, webhook_id)
    if webhook is None:
        raise InvalidInput(f"no webhook with the id {webhook_id} (see `newsletter webhooks list`)")
    return webhook


def remove_webhook(session: Session, webhook_id: int) -> None:
    """The webhook and its deliveries (posted or not) are gone."""
    session.execute(
        WebhookDelivery.__table__.delete().where(WebhookDelivery.webhook_id == webhook_id)
    )
    session.delete(webhook_by_id(session, webhook_id))


def listeners(session: Session | Connection, event: str) -> list[Row]:
    """The active webhooks that asked for this event, as (id, events) rows: no Webhook loaded,
    and a Core connection will do (a few rows: filtered here, not in SQL, as JSON lists are
    queried differently by each backend)."""
    active = session.execute(
        select(Webhook.id, Webhook.events).where(Webhook.active.is_(True)).order_by(Webhook.id)
    )
    return [webhook for webhook in active if event in webhook.events]


def queue_event(
    session: Session | Connection, event: str, data: dict, to: Sequence[Row] | None = None
) -> int:
    """A pending delivery of the event for each webhook that asked for it (or `to` these, of
    `listeners`), in the caller's transaction; how many."""
    webhooks = listeners(session, event) if to is None else to
    at = utcnow()
    if webhooks:  # one INSERT, without the ORM's unit of work: a one-click POST pays for it
        session.execute(
            insert(WebhookDelivery),
            [
                {
                    "webhook_id": webhook.id,
                    "event": event,
                    "payload": envelope(event, data, at),
                    "status": PENDING,
                    "attempts": 0,
                    "detail": "",
                    "created_at": at,
                }
                for webhook in webhooks
            ],
        )
    return len(webhooks)


def subscriber_data(subscriber: Subscriber, source: str, detail: str) -> dict:
    """What a subscriber event tells: who (their public id and address: the operator's
    endpoint acts on the address, say removes it from a CRM; never a token or a secret), where
    it came from and why."""
    topics = [topic.name for topic in subscriber.topics]
    return subscriber_payload(
        subscriber.public_id, subscriber.email, str(subscriber.status), subscriber.language,
        topics, source, detail,
    )  # fmt: skip


def subscriber_payload(
    public_id: str,
    email: str,
    status: str,
    language: str,
    topics: list[str],
    source: str,
    detail: str,
) -> dict:
    """`subscriber_data` from plain values, for a write that loaded no Subscriber."""
    return {
        "subscriber": {
            "public_id": public_id,
            "email": email,
            "status": status,
            "language": language,
            "topics": topics,
        },
        "source": source,
        "detail": detail,
    }


# ---------------------------------------------------------------- posting


@dataclass(frozen=True)
class DueWebhook:
    """A claimed delivery with what posting it needs."""

    delivery_id: int
    webhook_id: int
    url: str
    secret: str
    payload: dict
    attempts: int


def _due(now: datetime):
    return and_(
        WebhookDelivery.status == PENDING,
        or_(WebhookDelivery.not_before.is_(None), WebhookDelivery.not_before <= now),
    )


def claim_webhook_delivery(
    session: Session, due_by: datetime, lease_until: datetime
) -> DueWebhook | None:
    """Take the oldest delivery due by `due_by` until `lease_until` (its `not_before`), so
    that no other poster takes it meanwhile: PostgreSQL skips rows others have locked, SQLite's
    writers take turns. A poster that dies leaves it due again when the lease ends."""
    due = select(WebhookDelivery.id).where(_due(due_by)).order_by(WebhookDelivery.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed = session.scalar(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(due.scalar_subquery()))
        .values(not_before=lease_until)
        .returning(WebhookDelivery.id)
    )
    if claimed is None:
        return None
    delivery = session.get(WebhookDelivery, claimed)
    webhook = session.get(Webhook, delivery.webhook_id)
    return DueWebhook(
        delivery.id, webhook.id, webhook.url, webhook.secret, delivery.payload, delivery.attempts
    )


def record_webhook_attempt(
    session: Session,
    delivery_id: int,
    status: str,
    detail: str,
    not_before: datetime | None = None,
) -> None:
    """One more attempt: sent, failed for good, or pending again from `not_before`."""
    values: dict = {
        "status": status,
        "detail": detail[:500],
        "attempts": WebhookDelivery.attempts + 1,
        "not_before": not_before,
    }
    if status == SENT:
        values["sent_at"] = utcnow()
    session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values)
    )


def retry_webhook_deliveries(session: Session, delivery_ids: Sequence[int] = ()) -> int:
    """These failed deliveries (all failed ones when none is named) pending again, from a
    first attempt; how many."""
    where = [WebhookDelivery.status == FAILED]
    if delivery_ids:
        where.append(WebhookDelivery.id.in_(list(delivery_ids)))
    return session.execute(
        update(WebhookDelivery)
        .where(*where)
        .values(status=PENDING, attempts=0, not_before=None)
        .execution_options(synchronize_session=False)
    ).rowcount


def has_due_webhooks(session: Session, now: datetime) -> bool:
    return session.scalar(select(WebhookDelivery.id).where(_due(now)).limit(1)) is not None


# ---------------------------------------------------------------- watching


@dataclass(frozen=True)
class WebhookCounts:
    """A webhook's deliveries by state, and the last error its endpoint gave."""

    webhook: Webhook
    pending: int
    sent: int
    failed: int
    last_error: str


def webhook_counts(session: Session) -> list[WebhookCounts]:
    """Every webhook's deliveries by state, and its last unsuccessful answer (of a failed
    delivery, or of one waiting for a retry)."""
    counts: dict[tuple[int, str], int] = {
        (webhook_id, status): count
        for webhook_id, status, count in session.execute(
            select(WebhookDelivery.webhook_id, WebhookDelivery.status, func.count()).group_by(
                WebhookDelivery.webhook_id, WebhookDelivery.status
            )
        )
    }
    unsuccessful = or_(
        WebhookDelivery.status == FAILED,
        and_(WebhookDelivery.status == PENDING, WebhookDelivery.attempts > 0),
    )
    result = []
    for webhook in list_webhooks(session):
        last_error = session.scalar(
            select(WebhookDelivery.detail)
            .where(WebhookDelivery.webhook_id == webhook.id, unsuccessful)
            .order_by(WebhookDelivery.id.desc())
            .limit(1)
        )
        result.append(
            WebhookCounts(
                webhook,
                *(counts.get((webhook.id, status), 0) for status in (PENDING, SENT, FAILED)),
                last_error or "",
            )
        )
    return result


def recent_webhook_deliveries(
    session: Session, limit: int = 20, *, failed_only: bool = False, webhook_id: int | None = None
) -> list[WebhookDelivery]:
    """The newest deliveries first."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if failed_only:
        query = query.where(WebhookDelivery.status == FAILED)
    if webhook_id is not None:
        query = query.where(WebhookDelivery.webhook_id == webhook_id)
    return list(session.scalars(query))
