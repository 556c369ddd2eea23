"""A reader's library: the papers they saved, newest saved first, with the digest pages' cards,
a BibTeX download and an Atom feed, each at `/library/<token>` (a `library` token, which never
expires, like the email's other links). Removing a paper is a CSRF-checked POST.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import Blueprint, Response, redirect, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf
from sqlalchemy.orm import Session

from newsletter import store
from newsletter.db import session_scope
from newsletter.digest.content import paper_item
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.publish.bibtex import BIBTEX_MIMETYPE, library_bibtex
from newsletter.publish.feeds import ATOM_MIMETYPE, atom_xml, library_feed
from newsletter.tokens import LIBRARY
from newsletter.web.common import gone, invalid_link, page, settings, token_value

blueprint = Blueprint("library", __name__)

DONE = {"removed": "Removed from your library.", "absent": "That paper was not in your library."}


def _reader_view(view: Callable[[Session, Subscriber, str], ResponseReturnValue]):
    """A view of one reader's library: 400 for a token that is not a library token, one
    "gone" page for a reader no longer on the list; else `view(session, subscriber, token)`."""

    @functools.wraps(view)
    def wrapper(token: str) -> ResponseReturnValue:
        public_id = token_value(LIBRARY, token)
        if public_id is None:
            return invalid_link("library")
        with session_scope(settings()) as session:
            subscriber = store.subscriber_by_public_id(session, public_id)
            if subscriber is None or subscriber.status == SubscriberStatus.pending:
                return gone()
            return view(session, subscriber, token)

    return wrapper


@blueprint.get("/library/<token>")
@_reader_view
def library(session: Session, subscriber: Subscriber, token: str):
    papers = [(paper_item(p), at) for p, at in store.saved_papers(session, subscriber.id)]
    return page(
        "library.html.j2",
        papers=papers,
        token=token,
        done=DONE.get(request.args.get("done", "")),
        csrf_token=generate_csrf(),
    )


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
