"""A reader's library: the papers they saved, newest saved first, with the digest pages' cards,
a BibTeX download and an Atom feed, each at `/library/<token>` (a `library` token, which never
expires, like the email's other links). Removing a paper is a CSRF-checked POST; so is "Start
from papers you know", which reads arXiv ids and a BibTeX file with the CLI's intake, matches
and marks them with its `seed_subscriber` (within `SEED_LOOKUPS`) and shows what became of each.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable

from flask import Blueprint, Response, current_app, redirect, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf
from huey.exceptions import TaskLockedException
from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.daily.fetch import arxiv_source
from newsletter.daily.seeds import LookupLimit, SeedReport, seed_subscriber
from newsletter.db import session_scope
from newsletter.digest.content import paper_item
from newsletter.intake.seeds import seeds_from_bibtex, seeds_from_ids
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.publish.bibtex import BIBTEX_MIMETYPE, library_bibtex
from newsletter.publish.feeds import ATOM_MIMETYPE, atom_xml, library_feed
from newsletter.sources.arxiv import ArxivSource
from newsletter.sources.lookup import Outcome
from newsletter.tokens import LIBRARY
from newsletter.web.common import gone, invalid_link, page, settings, token_value
from newsletter.web.limits import SEED_UPLOAD
from newsletter.worker.fetchlock import fetch_lock

blueprint = Blueprint("library", __name__)

SEED_LOOKUPS = LookupLimit(ids=50, titles=5)
"""What one POST of the seed form may ask arXiv: 50 ids (one request at the default page size)
and 5 title searches (a request each, 3 s apart), so the answer comes within gunicorn's 30 s.
The rest are reported "not looked at"; papers and DOIs stored already cost nothing."""

_IDS_SEPARATOR = re.compile(r"[\s,;]+")

_arxiv_lock = threading.Lock()
"""One seed lookup at a time per process, through the app's one `ArxivSource`: arXiv's
3-second rule holds across the process's threads (their requests queue behind each other's)."""

DONE = {"removed": "Removed from your library.", "absent": "That paper was not in your library."}


def _reader_view(view: Callable[[Session, Subscriber, str], ResponseReturnValue]):
    """A view of one reader's library: 400 for a token that is not a library token, one
    "gone" page for a reader no longer on the list; else `view(session, subscriber, token)`."""

    @functools.wraps(view)
    def wrapper(token: str) -> ResponseReturnValue:
        with session_scope(settings()) as session:
            found = _reader(session, token)
            return view(session, found, token) if isinstance(found, Subscriber) else found

    return wrapper


def _reader(session: Session, token: str) -> Subscriber | ResponseReturnValue:
    """The reader a library token names, or the page that refuses it: 400 for a token that
    is not a library token, one "gone" page for a reader no longer on the list."""
    public_id = token_value(LIBRARY, token)
    if public_id is None:
        return invalid_link("library")
    subscriber = store.subscriber_by_public_id(session, public_id)
    if subscriber is None or subscriber.status == SubscriberStatus.pending:
        return gone()
    return subscriber


@blueprint.get("/library/<token>")
@_reader_view
def library(session: Session, subscriber: Subscriber, token: str):
    return _library_page(session, subscriber, token, DONE.get(request.args.get("done", "")))


def _library_page(
    session: Session,
    subscriber: Subscriber,
    token: str,
    done: str | None = None,
    seeded: SeedReport | None = None,
):
    papers = [(paper_item(p), at) for p, at in store.saved_papers(session, subscriber.id)]
    return page(
        "library.html.j2",
        papers=papers,
        token=token,
        done=done,
        seeded=seeded,
        seed_summary=_summary(seeded) if seeded is not None else "",
        csrf_token=generate_csrf(),
        upload_limit=f"{SEED_UPLOAD // 1024 // 1024} MB",
        lookups=SEED_LOOKUPS,
    )


@blueprint.post("/library/<token>/seeds")
def seed(token: str):
    """Match the papers the form names and mark them as the reader's seeds; the library page
    with what became of each entry. The reader is looked up first, and no session is held while
    arXiv answers."""
    config = settings()
    with session_scope(config) as session:
        found = _reader(session, token)
        if not isinstance(found, Subscriber):
            return found
        subscriber_id = found.id
    typed = request.form.get("ids", "")
    seeds, problems = seeds_from_ids(part for part in _IDS_SEPARATOR.split(typed) if part)
    upload = request.files.get("bibtex")
    if upload is not None and upload.filename:
        text = upload.read().decode("utf-8-sig", errors="replace")
        more_seeds, more_problems = seeds_from_bibtex(text, _file_name(upload.filename))
        seeds += more_seeds
        problems += more_problems
    report, done = None, "Name a paper: an arXiv id, or a BibTeX file."
    if seeds or problems:
        try:
            # One process at a time asks arXiv, the daily fetch included (arXiv's rule is
            # per site), and one thread of this one.
            with fetch_lock(config), _arxiv_lock:
                source = _arxiv_source(config)
                report = seed_subscriber(
                    config, subscriber_id, seeds, problems, source, SEED_LOOKUPS
                )
        except TaskLockedException:
            done = "arXiv is being asked by another job just now: send this again in a minute."
    with session_scope(config) as session:
        found = _reader(session, token)  # (gone meanwhile: the same page as before)
        if not isinstance(found, Subscriber):
            return found
        return _library_page(session, found, token, None if report else done, report)


@blueprint.get("/library/<token>/library.bib")
@_reader_view
def bibtex(session: Session, subscriber: Subscriber, token: str):
    text = library_bibtex(store.library_of(session, subscriber.id))
    response = Response(text, content_type=f"{BIBTEX_MIMETYPE}; charset=utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="library.bib"'
    return response


@blueprint.get("/library/<token>/atom.xml")
@_reader_view
def feed(session: Session, subscriber: Subscriber, token: str):
    config = settings()
    library_url = f"{config.base_url}/library/{token}"
    built = library_feed(
        store.saved_papers(session, subscriber.id),
        self_url=f"{library_url}/atom.xml",
        library_url=library_url,
        site_name=config.sender_name,
    )
    return Response(atom_xml(built), content_type=f"{ATOM_MIMETYPE}; charset=utf-8")


@blueprint.post("/library/<token>/remove")
@_reader_view
def remove(session: Session, subscriber: Subscriber, token: str):
    paper = store.paper_by_arxiv_id(session, request.form.get("paper", "")[:40])
    removed = paper is not None and store.unsave_paper(session, subscriber.id, paper.id)
    return redirect(f"/library/{token}?done={'removed' if removed else 'absent'}", 303)


def _arxiv_source(config: Settings) -> ArxivSource:
    """The app's one source (call with `_arxiv_lock` held)."""
    if "arxiv_source" not in current_app.extensions:
        current_app.extensions["arxiv_source"] = arxiv_source(config)
    return current_app.extensions["arxiv_source"]


def _file_name(filename: str) -> str:
    """How the report names the uploaded file: its name without a folder, made short."""
    return re.split(r"[\\/]", filename)[-1][:80] or "upload.bib"


def _summary(report: SeedReport) -> str:
    counts = [f"{report.count(o)} {o.value}" for o in Outcome if report.count(o)]
    return f"{', '.join(counts)}; {report.newly_marked} new seed paper(s)."
