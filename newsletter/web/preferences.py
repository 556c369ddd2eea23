"""A subscriber's preferences: topics, language, mail format, the authors they follow, their
ranking switch, their rhythm (how often, which day, which hour, which time zone), a pause,
leaving one topic or all, coming back.

Reached with a `preferences` token (from every email, and from the unsubscribe page), which
never expires. Every change is a CSRF-checked POST, logged with source `web`, and answered
with a redirect to the page (so a reload never posts twice) saying what was done.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, redirect, request
from flask_wtf.csrf import generate_csrf

from newsletter import store
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.intake.rhythm import SendClock
from newsletter.intake.subscribers import (
    LANGUAGE_CHOICES,
    followed_names,
    normalise_format,
    offered_language,
)
from newsletter.models import MailFormat, Subscriber, SubscriberStatus, Topic
from newsletter.schedules import Schedule
from newsletter.tokens import PREFERENCES, library_url
from newsletter.web.common import invalid_link, message, page, settings, token_value
from newsletter.web.rhythm_form import RhythmForm, rhythm_choices

blueprint = Blueprint("preferences", __name__)

PAUSE_WEEKS = (1, 2, 4, 8, 12)
ACTIONS = ("save", "pause", "resume", "unsubscribe", "resubscribe")
FORMATS = {
    MailFormat.html: "HTML email (with a plain-text version)",
    MailFormat.text: "Plain text only",
}
DONE = {
    "save": "Your preferences are saved.",
    "unchanged": "Nothing needed saving: these are your preferences already.",
    "pause": "Paused. Your digest comes back on the day shown below.",
    "resume": "Welcome back: your digest comes again from the next issue.",
    "unsubscribe": "You are unsubscribed. You can come back here at any time.",
    "resubscribe": "Welcome back: your digest comes again from the next issue.",
}


class FieldInvalid(InvalidInput):
    """A value of one field of the form is wrong: the page says so next to that field."""

    def __init__(self, field: str, text: str) -> None:
        super().__init__(text)
        self.field = field


@blueprint.route("/preferences/<token>", methods=["GET", "POST"])
def preferences(token: str):
    public_id = token_value(PREFERENCES, token)
    if public_id is None:
        return invalid_link("preferences")
    with session_scope(settings()) as session:
        subscriber = store.subscriber_by_public_id(session, public_id)
        if subscriber is None or subscriber.status == SubscriberStatus.pending:
            return message(
                "No subscription here",
                "This address is not on the list (any more), or was never confirmed. You can"
                " subscribe again at any time.",
                404,
                next_url="/subscribe",
                next_label="Subscribe",
            )
        known = store.list_topics(session)
        errors: dict[str, str] = {}
        if request.method == "POST":
            action = request.form.get("action", "")
            try:
                done = _apply(session, subscriber, action, known)
            except FieldInvalid as error:
                errors[error.field] = str(error)
            except InvalidInput as error:
                errors[action] = str(error)
            else:
                return redirect(f"/preferences/{token}?done={done}", 303)
        return page(
            "preferences.html.j2",
            400 if errors else 200,
            **_context(session, subscriber, known, token, errors),
        )


def _apply(session, subscriber: Subscriber, action: str, known: list[Topic]) -> str:
    """Carry out one form's action; what to tell the subscriber, as a key of `DONE`."""
    active = subscriber.status == SubscriberStatus.active
    if action not in ACTIONS or active == (action == "resubscribe"):
        raise InvalidInput("That is not something this page can do now. Reload the page.")
    if action == "save":
        topics, language, mail_format = _chosen(known, subscriber)
        changed = store.change_preferences(
            session,
            subscriber,
            topics,
            language,
            "web",
            mail_format,
            follows=_chosen_follows(),
            ranking=_chosen_ranking(),
            schedule=_chosen_schedule(),
            clock=SendClock.of(settings()),
        )
        return "save" if changed else "unchanged"
    if action == "pause":
        weeks = request.form.get("weeks", "")
        if not weeks.isdigit() or int(weeks) not in PAUSE_WEEKS:
            raise InvalidInput("Choose how many weeks to pause for.")
        until = settings().today() + timedelta(weeks=int(weeks))
        store.pause_subscriber(session, subscriber, until, "web")
    elif action == "resume":
        store.pause_subscriber(session, subscriber, None, "web")
    elif action == "unsubscribe":
        store.set_status(session, subscriber, SubscriberStatus.unsubscribed, "web")
    else:  # resubscribe: come back, with the topics, language and format chosen on the page
        topics, language, mail_format = _chosen(known, subscriber)
        store.change_preferences(session, subscriber, topics, language, "web", mail_format)
        store.resubscribe(session, subscriber, "web")
    return action


def _chosen(
    known: list[Topic], subscriber: Subscriber
) -> tuple[list[Topic], str, MailFormat | None]:
    """The topics, language and mail format posted; all checked before anything is saved."""
    slugs = request.form.getlist("topics")
    by_slug = {topic.slug: topic for topic in known}
    if not slugs:
        raise InvalidInput(
            "Choose at least one topic. To leave every topic, use Unsubscribe below."
        )
    if any(slug not in by_slug for slug in slugs):
        raise InvalidInput("Choose topics from the list.")
    chosen = {by_slug[slug].id for slug in slugs}
    language = offered_language(request.form.get("language", ""), also=subscriber.language)
    return [topic for topic in known if topic.id in chosen], language, _chosen_format()


def _chosen_format() -> MailFormat | None:
    """The format picked; None (keep the current one) when the form has no format field."""
    value = request.form.get("format")
    if value is None:
        return None
    try:
        return normalise_format(value)
    except InvalidInput:
        raise InvalidInput("Choose an email format from the list.") from None


def _chosen_follows() -> list[str] | None:
    """The authors typed, one a line, checked by the intake layer every door uses (the CSV
    import, the store's `set_follows`); None (keep the follows) when the form has no such
    field."""
    text = request.form.get("follows")
    if text is None:
        return None
    names = text.splitlines()
    try:
        followed_names(names)
    except InvalidInput as error:
        raise FieldInvalid("follows", f"Nothing was saved: {error}.") from None
    return names


def _chosen_schedule() -> Schedule | None:
    """The rhythm chosen, checked by the intake layer every door uses; None (keep theirs)
    when the form has no such fields."""
    rhythm = RhythmForm.posted()
    if rhythm is None:
        return None
    errors: dict[str, str] = {}
    schedule = rhythm.checked(errors)
    if schedule is None:
        field, text = next(iter(errors.items()))
        raise FieldInvalid(field, f"Nothing was saved: {text}")
    return schedule


def _typed_rhythm(subscriber: Subscriber, errors: dict[str, str]) -> RhythmForm:
    """What the rhythm fields show: what was typed when the form came back with an error,
    else the reader's own."""
    typed = RhythmForm.posted() if errors else None
    return typed or RhythmForm.of(store.schedule_of(subscriber))


def _chosen_ranking() -> bool | None:
    """The ranking switch; None (keep it) when the form has no such field. The form sends a
    hidden `off` before the checkbox, so an unticked box still says it was there."""
    values = request.form.getlist("ranking")
    return "on" in values if values else None


def _typed_follows(session, subscriber: Subscriber, errors: dict[str, str]) -> str:
    """What the follows field shows: what was typed when the form came back with an error,
    else the authors followed, as the reader wrote them."""
    if errors and request.form.get("follows") is not None:
        return request.form["follows"]
    return "\n".join(follow.name for follow in store.follows_of(session, subscriber.id))


def _typed_ranking(subscriber: Subscriber, errors: dict[str, str]) -> bool:
    chosen = _chosen_ranking() if errors else None
    return subscriber.ranking if chosen is None else chosen


def _context(
    session, subscriber: Subscriber, known: list[Topic], token: str, errors: dict[str, str]
) -> dict[str, object]:
    languages = dict(LANGUAGE_CHOICES)
    languages.setdefault(subscriber.language, subscriber.language)  # set by the operator
    paused = subscriber.paused_until is not None and subscriber.paused_until > settings().today()
    return {
        "token": token,
        "email": subscriber.email,
        "state": subscriber.status.value,
        "paused_until": subscriber.paused_until if paused else None,
        "followed": [topic.slug for topic in subscriber.topics],
        "followed_names": [topic.name for topic in subscriber.topics],
        "language": subscriber.language,
        "language_name": languages[subscriber.language],
        "mail_format": subscriber.format.value,
        "formats": {mail_format.value: label for mail_format, label in FORMATS.items()},
        "topics": [(topic.slug, topic.name, topic.description) for topic in known],
        "languages": languages,
        "pause_weeks": PAUSE_WEEKS,
        "translated": settings().translator != "none",
        "follows": _typed_follows(session, subscriber, errors),
        "ranking": _typed_ranking(subscriber, errors),
        "rhythm": _typed_rhythm(subscriber, errors),
        "rhythm_text": SendClock.of(settings()).describe(store.schedule_of(subscriber)),
        "rhythm_choices": rhythm_choices(settings()),
        "signal": store.reader_signal_counts(session, [subscriber.id]).get(subscriber.id, 0),
        "min_signal": settings().ranking_min_signal,
        "done": DONE.get(request.args.get("done", "")),
        "errors": errors,
        "csrf_token": generate_csrf(),
        "library_url": library_url("", settings().secret(), subscriber.public_id),
    }
