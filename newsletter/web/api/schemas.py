"""The API's request and response bodies (marshmallow), from which the OpenAPI document's
schemas are made. The values themselves are checked by `intake`, as for the command line:
these say only which fields there are and of what type."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from newsletter.models import ChatPlatform, MailFormat, SubscriberStatus


def flag(description: str) -> fields.Boolean:
    """A yes-or-no query parameter, no unless given."""
    return fields.Boolean(load_default=False, metadata={"description": description})


class Problem(Schema):
    """An RFC 9457 problem details document."""

    type = fields.String(metadata={"example": "/api/v1/problems/invalid-input"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    instance = fields.String()
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        metadata={"description": "The fields at fault, each with what is wrong with it."},
    )


class Hour(fields.Field):
    """An hour as the command line's --hour takes it: 7, "07", "7:00" or "none"."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValidationError("an hour is a number 0-23, a time like 07:00, or none")
        return str(value)


# ---------------------------------------------------------------- topics


class TopicIn(Schema):
    name = fields.String(required=True)
    description = fields.String(load_default="")
    keywords = fields.List(fields.String(), load_default=list)
    categories = fields.List(fields.String(), load_default=list)
    exclude = fields.List(fields.String(), load_default=list)
    query = fields.String(load_default=None, allow_none=True)


class TopicChange(Schema):
    add_keywords = fields.List(fields.String(), load_default=list)
    remove_keywords = fields.List(fields.String(), load_default=list)
    add_categories = fields.List(fields.String(), load_default=list)
    remove_categories = fields.List(fields.String(), load_default=list)
    add_excludes = fields.List(fields.String(), load_default=list)
    remove_excludes = fields.List(fields.String(), load_default=list)
    query = fields.String(
        load_default=None, allow_none=True, metadata={"description": "'' clears it"}
    )
    description = fields.String(load_default=None, allow_none=True)


class TopicOut(Schema):
    name = fields.String()
    slug = fields.String()
    description = fields.String()
    keywords = fields.List(fields.String())
    categories = fields.List(fields.String())
    exclude = fields.List(fields.String())
    query = fields.String(allow_none=True)
    arxiv_query = fields.String()
    subscribers = fields.Integer()
    papers = fields.Integer()


class TopicDeleteArgs(Schema):
    force = flag("Also when active subscribers follow it.")


class TopicTestArgs(Schema):
    limit = fields.Integer(load_default=10, validate=validate.Range(1, 100))


class PaperOut(Schema):
    arxiv_id = fields.String()
    version = fields.Integer()
    title = fields.String()
    abstract = fields.String()
    authors = fields.List(fields.String())
    categories = fields.List(fields.String())
    primary_category = fields.String()
    published = fields.DateTime()
    updated = fields.DateTime()
    comment = fields.String(allow_none=True)
    journal_ref = fields.String(allow_none=True)
    doi = fields.String(allow_none=True)
    abs_url = fields.String()
    pdf_url = fields.String(allow_none=True)
    code_urls = fields.List(fields.String())
    first_seen_at = fields.DateTime()


def paper_values(paper) -> dict:
    """A paper's fields that PaperOut shows, as a dict (to add to)."""
    return {name: getattr(paper, name) for name in PaperOut().fields}


class TopicTestOut(Schema):
    topic = fields.String()
    query = fields.String()
    total = fields.Integer(metadata={"description": "How many papers on arXiv match."})
    papers = fields.List(fields.Nested(PaperOut))


# ---------------------------------------------------------------- subscribers


class Rhythm(Schema):
    cadence = fields.String(load_default=None, allow_none=True, metadata={"example": "weekly"})
    day = fields.String(load_default=None, allow_none=True, metadata={"example": "mon"})
    hour = Hour(load_default=None, allow_none=True, metadata={"example": 7})
    timezone = fields.String(
        load_default=None, allow_none=True, metadata={"example": "Asia/Shanghai"}
    )


class SubscriberIn(Rhythm):
    email = fields.String(required=True)
    topics = fields.List(fields.String(), required=True)
    name = fields.String(load_default="")
    language = fields.String(load_default=None, allow_none=True)
    format = fields.String(load_default=None, allow_none=True, metadata={"example": "html"})
    follows = fields.List(fields.String(), load_default=list)


class SubscriberChange(Rhythm):
    add_topics = fields.List(fields.String(), load_default=list)
    remove_topics = fields.List(fields.String(), load_default=list)
    name = fields.String(load_default=None, allow_none=True)
    language = fields.String(load_default=None, allow_none=True)
    format = fields.String(load_default=None, allow_none=True)
    follow = fields.List(fields.String(), load_default=list)
    unfollow = fields.List(fields.String(), load_default=list)
    resubscribe = fields.Boolean(load_default=False)


class SubscriberOut(Schema):
    id = fields.String(metadata={"description": "The public id: what the API names them by."})
    email = fields.String()
    name = fields.String()
    topics = fields.List(fields.String())
    language = fields.String()
    format = fields.String(validate=validate.OneOf([f.value for f in MailFormat]))
    follows = fields.List(fields.String())
    cadence = fields.String()
    day = fields.String(allow_none=True)
    hour = fields.Integer(allow_none=True)
    timezone = fields.String(allow_none=True)
    rhythm = fields.String()
    next_send_at = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf([s.value for s in SubscriberStatus]))
    created_at = fields.String()


class ChannelIn(Schema):
    platform = fields.String(
        required=True, validate=validate.OneOf([*(p.value for p in ChatPlatform), "lark"])
    )
    url = fields.String(
        required=True,
        metadata={"description": "The incoming-webhook URL; for Matrix, the homeserver's."},
    )
    name = fields.String(required=True, metadata={"example": "#lab-papers"})
    topics = fields.List(fields.String(), required=True)
    language = fields.String(load_default=None, allow_none=True)
    room = fields.String(
        load_default=None, allow_none=True, metadata={"description": "Matrix: the room id."}
    )
    token = fields.String(
        load_default=None, allow_none=True, metadata={"description": "Matrix: the access token."}
    )
    secret = fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "Feishu: the bot's signing secret, if it has one."},
    )


class ChannelOut(Schema):
    id = fields.String(metadata={"description": "The public id: what the API names it by."})
    name = fields.String()
    platform = fields.String(validate=validate.OneOf([p.value for p in ChatPlatform]))
    url = fields.String(metadata={"description": "Scheme and host only: the rest is secret."})
    room = fields.String(allow_none=True)
    topics = fields.List(fields.String())
    language = fields.String()
    status = fields.String(validate=validate.OneOf([s.value for s in SubscriberStatus]))
    created_at = fields.String()


class ChannelTestOut(Schema):
    channel = fields.String()
    posted = fields.Boolean()
    answer = fields.String(metadata={"description": "Why the platform refused, if it did."})


class SubscriberListArgs(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))
    cursor = fields.String(load_default=None, metadata={"description": "The `next` of a page."})
    status = fields.String(
        load_default=None, validate=validate.OneOf([s.value for s in SubscriberStatus])
    )
    topic = fields.String(load_default=None)
    language = fields.String(load_default=None)
    email = fields.String(load_default=None, metadata={"description": "A part of the address."})


class SubscriberPage(Schema):
    items = fields.List(fields.Nested(SubscriberOut))
    next = fields.String(allow_none=True, metadata={"description": "The next page's address."})


class SubscriberDeleteArgs(Schema):
    purge = flag("Delete them and their history; otherwise unsubscribe them.")


class EventOut(Schema):
    at = fields.DateTime()
    kind = fields.String()
    source = fields.String()
    detail = fields.String()


class ImportArgs(Schema):
    update = flag("Overwrite what known addresses have.")


class RejectedRowOut(Schema):
    line = fields.Integer()
    reason = fields.String()
    text = fields.String()


class ImportOut(Schema):
    outcomes = fields.Dict(keys=fields.String(), values=fields.Integer())
    rejected = fields.List(fields.Nested(RejectedRowOut))
    summary = fields.String()


# ---------------------------------------------------------------- digests and papers


Counts = fields.Dict(keys=fields.String(), values=fields.Integer())


class DigestOut(Schema):
    id = fields.Integer()
    date = fields.Date()
    kind = fields.String()
    window_start = fields.DateTime(allow_none=True)
    window_end = fields.DateTime()
    created_at = fields.DateTime()
    ready_at = fields.DateTime(allow_none=True)
    papers = fields.Integer(metadata={"description": "Distinct papers it carries."})
    topics = Counts
    deliveries = Counts


class DigestTopicPapers(Schema):
    name = fields.String()
    slug = fields.String()
    papers = fields.List(fields.Nested(PaperOut))


class DigestPapersOut(Schema):
    digest = fields.Integer()
    topics = fields.List(fields.Nested(DigestTopicPapers))


class PaperSearchArgs(Schema):
    arxiv_id = fields.String(load_default=None, metadata={"example": "2411.01234"})
    topic = fields.String(load_default=None)
    since = fields.Date(load_default=None, metadata={"description": "Submitted on or after."})
    until = fields.Date(load_default=None, metadata={"description": "Submitted on or before."})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))


class PaperFound(PaperOut):
    topics = fields.List(fields.String())


# ---------------------------------------------------------------- the job


class JobRunOut(Schema):
    queued = fields.Boolean()
    task_id = fields.String()
    detail = fields.String()


class WorkerOut(Schema):
    name = fields.String()
    threads = fields.Integer()
    periodic = fields.Boolean()
    started = fields.DateTime()
    last_beat = fields.DateTime()
    doing = fields.List(fields.String())
    down = fields.List(fields.String())


class QueueOut(Schema):
    ok = fields.Boolean()
    problem = fields.String(allow_none=True)
    pending = fields.Integer(allow_none=True)
    scheduled = fields.Integer(allow_none=True)
    warning = fields.String(allow_none=True)


class SlotOut(Schema):
    at = fields.DateTime(allow_none=True)
    cadence = fields.String()
    readers = fields.Integer()


class FailureOut(Schema):
    email = fields.String()
    status = fields.String()
    detail = fields.String()


class ClaimOut(Schema):
    worker = fields.String()
    count = fields.Integer()
    lease_until = fields.DateTime()


class LatestDigestOut(Schema):
    id = fields.Integer()
    date = fields.Date()
    deliveries = Counts
    in_flight = fields.List(fields.Nested(ClaimOut))
    failures = fields.List(fields.Nested(FailureOut))
    next_due = fields.DateTime(allow_none=True)


class JobStatusOut(Schema):
    queue = fields.Nested(QueueOut)
    workers = fields.List(fields.Nested(WorkerOut))
    next_sends = fields.List(fields.Nested(SlotOut))
    latest_digest = fields.Nested(LatestDigestOut, allow_none=True)


class JobStatusArgs(Schema):
    failures = fields.Integer(load_default=20, validate=validate.Range(0, 500))
