"""Subscribing: the form, and the confirmation link of the double opt-in (see `optin`).

The form answers the same page whether or not the address is known, subscribed, or asked for
a moment ago. The confirmation link shows a button (GET changes nothing: scanners prefetch
links) and its POST confirms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, current_app, request
from flask_wtf.csrf import generate_csrf

from newsletter import store
from newsletter.db import session_scope
from newsletter.errors import ExpiredToken, InvalidInput, InvalidToken
from newsletter.intake.rhythm import SendClock
from newsletter.intake.subscribers import LANGUAGE_CHOICES, normalise_email, offered_language
from newsletter.models import Topic
from newsletter.schedules import Schedule
from newsletter.tokens import PREFERENCES, make_token
from newsletter.web import optin
from newsletter.web.common import message, page, settings
from newsletter.web.rhythm_form import RhythmForm, rhythm_choices

blueprint = Blueprint("subscribe", __name__)

MAX_ADDRESS_LENGTH = 320


@dataclass
class SubscribeForm:
    """What the form holds: as typed, then checked; `errors` by field name."""

    email: str = ""
    topics: list[str] = field(default_factory=list)
    """Slugs of the chosen topics."""
    language: str = "en"
    rhythm: RhythmForm = field(default_factory=RhythmForm)
    """How often and when: carried in the confirmation link, stored when it is used."""
    errors: dict[str, str] = field(default_factory=dict)


@blueprint.get("/subscribe")
def subscribe_page():
    chosen = [slug for slug in request.args.getlist("topic") if slug]
    form = SubscribeForm(topics=chosen, language=settings().default_language)
    return _form_page(form)


@blueprint.post("/subscribe")
def subscribe():
    form = SubscribeForm(
        email=request.form.get("email", "").strip()[:MAX_ADDRESS_LENGTH],
        topics=request.form.getlist("topics"),
        language=request.form.get("language", ""),
        rhythm=RhythmForm.posted() or RhythmForm(),
    )
    job = None
    with session_scope(settings()) as session:  # one transaction: the topics read, the claim
        topics = _checked(form, store.topics_by_slugs(session, form.topics))
        schedule = form.rhythm.checked(form.errors)  # after: errors show in the form's order
        if not form.errors:
            job = optin.claim(
                session, settings(), form.email, topics, form.language, schedule=schedule
            )
    if form.errors:
        return _form_page(form, 400)
    outcome = optin.HELD_BACK
    if job is not None:  # queued once the claim is committed
        outcome = optin.queue_claimed(
            settings(), job, send=current_app.config.get(optin.QUEUE_KEY, optin.to_worker)
        )
    if outcome == optin.FAILED:
        return message(
            "Please try again later",
            "We could not send the confirmation email just now. Nothing was changed; please try"
            " again in a few minutes.",
            503,
        )
    # On its way, or held back because one went out a moment ago: the same answer, so the page
    # never tells whether an address is on the list or was asked for already.
    return page("subscribe_sent.html.j2", email=form.email)


def _checked(form: SubscribeForm, known: list[Topic]) -> list[Topic]:
    """The form's fields checked (errors noted on it), and its topics among `known` (those of
    its slugs that exist)."""
    try:
        form.email = normalise_email(
            form.email, check_deliverability=settings().check_deliverability
        )
    except InvalidInput:
        form.errors["email"] = "Enter an email address like name@example.org."
    by_slug = {topic.slug: topic for topic in known}
    chosen = [by_slug[slug] for slug in dict.fromkeys(form.topics) if slug in by_slug]
    if not form.topics:
        form.errors["topics"] = "Choose at least one topic."
    elif len(chosen) != len(set(form.topics)):
        form.errors["topics"] = "Choose topics from the list."
    try:
        form.language = offered_language(form.language)
    except InvalidInput as error:
        form.errors["language"] = str(error)
        form.language = "en"
    return sorted(chosen, key=lambda topic: (topic.position, topic.id))


def _form_page(form: SubscribeForm, status: int = 200):
    with session_scope(settings()) as session:
        topics = [
            (topic.slug, topic.name, topic.description) for topic in store.list_topics(session)
        ]
    return page(
        "subscribe.html.j2",
        status,
        form=form,
        topics=topics,
        languages=LANGUAGE_CHOICES,
        translated=settings().translator != "none",
        rhythm_choices=rhythm_choices(settings()),
        csrf_token=generate_csrf(),
    )


# ---------------------------------------------------------------- the confirmation link


@blueprint.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    try:
        pending = optin.check(settings(), token)
    except ExpiredToken:
        return message(
            "This link has expired",
            "Confirmation links work for a limited time. Subscribe again to get a new one.",
            400,
            next_url="/subscribe",
            next_label="Subscribe again",
        )
    except InvalidToken:
        return message(
            "This link is not valid",
            "The confirmation link is broken, incomplete or replaced by a newer one. Use the"
            " link in the newest confirmation email, or subscribe again.",
            400,
            next_url="/subscribe",
            next_label="Subscribe again",
        )
    if request.method == "POST" or pending.used:
        if not pending.used:
            optin.confirm(settings(), token)
        public_id = pending.confirmation.public_id
        preferences = f"/preferences/{make_token(settings().secret(), PREFERENCES, public_id)}"
        return message(
            "You are subscribed",
            f"The digest of new papers on {', '.join(pending.topic_names)} will come to"
            f" {pending.email} on the days it is sent. Every email has a link to change your"
            " topics, pause or unsubscribe.",
            next_url=preferences,
            next_label="Your preferences",
        )
    return page(
        "confirm.html.j2",
        token=token,
        pending=pending,
        language_name=LANGUAGE_CHOICES.get(pending.language, pending.language),
        rhythm=SendClock.of(settings()).describe(pending.confirmation.schedule or Schedule()),
        csrf_token=generate_csrf(),
    )
