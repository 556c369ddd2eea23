"""A reader's library: the papers they saved, newest saved first, with the digest pages' cards,
a BibTeX download and an Atom feed, each at `/library/<token>` (a `library` token, which never
expires, like the email's other links). Removing a paper is a CSRF-checked POST.
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, request
from flask_wtf.csrf import generate_csrf

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


def _reader(session, token: str) -> Subscriber | None:
    public_id = token_value(LIBRARY, token)
    if public_id is None:
        return None
    subscriber = store.subscriber_by_public_id(session, public_id)
    if subscriber is None or subscriber.status == SubscriberStatus.pending:
        return None
    return subscriber


@blueprint.get("/library/<token>")
def library(token: str):
    if token_value(LIBRARY, token) is None:
        return invalid_link("library")
    with session_scope(settings()) as session:
        subscriber = _reader(session, token)
        if subscriber is None:
            return gone()
        papers = [(paper_item(p), at) for p, at in store.saved_papers(session, subscriber.id)]
    return page(
        "library.html.j2",
        papers=papers,
        token=token,
        done=DONE.get(request.args.get("done", "")),
        csrf_token=generate_csrf(),
    )


@blueprint.get("/library/<token>/library.bib")
def bibtex(token: str):
    if token_value(LIBRARY, token) is None:
        return invalid_link("library")
    with session_scope(settings()) as session:
        subscriber = _reader(session, token)
        if subscriber is None:
            return gone()
        text = library_bibtex(store.library_of(session, subscriber.id))
    response = Response(text, content_type=f"{BIBTEX_MIMETYPE}; charset=utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="library.bib"'
    return response


@blueprint.get("/library/<token>/atom.xml")
def feed(token: str):
    if token_value(LIBRARY, token) is None:
        return invalid_link("library")
    config = settings()
    with session_scope(config) as session:
        subscriber = _reader(session, token)
        if subscriber is None:
            return gone()
        library_url = f"{config.base_url}/library/{token}"
        built = library_feed(
            store.saved_papers(session, subscriber.id),
            self_url=f"{library_url}/atom.xml",
            library_url=library_url,
            site_name=config.sender_name,
        )
    return Response(atom_xml(built), content_type=f"{ATOM_MIMETYPE}; charset=utf-8")


@blueprint.post("/library/<token>/remove")
def remove(token: str):
    if token_value(LIBRARY, token) is None:
        return invalid_link("library")
    with session_scope(settings()) as session:
        subscriber = _reader(session, token)
        if subscriber is None:
            return gone()
        paper = store.paper_by_arxiv_id(session, request.form.get("paper", "")[:40])
        removed = paper is not None and store.unsave_paper(session, subscriber.id, paper.id)
    return redirect(f"/library/{token}?done={'removed' if removed else 'absent'}", 303)
