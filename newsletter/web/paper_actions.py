"""Save, "More like this" and "Less like this": the three links of a paper card in an email.

Mail security scanners fetch every link of a message (some run its scripts too), so a GET
records nothing: it shows the paper and one button for that action, and no script presses it.
A card's link is the reader's token (`tokens.PAPERS`, one a message), the paper's arXiv id and
the action; links of messages sent before carry one token of reader and paper
(`tokens.PAPER`) and still work. The button's form posts back to the same address with a CSRF
token and a second token signed for this reader, this paper and this action
(`tokens.PAPER_ACTION`); only that POST records anything, once: a replay changes nothing and
says so. The page that answers offers an undo and the reader's library.

A link that does not verify is a 400 page that says no more than that; a link of a reader who
left the list (or a paper no longer stored) gets one page, the same for both.
"""

from __future__ import annotations

from flask import Blueprint, abort, request
from flask_wtf.csrf import generate_csrf

from newsletter import store
from newsletter.db import session_scope
from newsletter.digest.content import paper_item
from newsletter.errors import InvalidToken
from newsletter.models import Rating, ReaderPaper, SubscriberStatus
from newsletter.tokens import (
    PAPER,
    PAPER_ACTION,
    PAPERS,
    library_url,
    make_token,
    read_token,
)
from newsletter.web.common import gone, invalid_link, page, settings

blueprint = Blueprint("paper_actions", __name__)

ACTIONS = {
    "save": ("Save this paper?", "Save to my library"),
    "more": ("More papers like this one?", "More like this"),
    "less": ("Fewer papers like this one?", "Less like this"),
}
"""Each action: the question its page asks, and its button."""
RATINGS = {"more": Rating.more, "less": Rating.less}


@blueprint.route("/papers/<token>/<path:arxiv_id>/<action>", methods=["GET", "POST"])
def paper_action(token: str, arxiv_id: str, action: str):
    """A card's link: the reader's `PAPERS` token, then the paper."""
    if action not in ACTIONS:
        abort(404)
    try:
        public_id = read_token(settings().secret(), PAPERS, token)
    except InvalidToken:
        return invalid_link("paper")
    return _action_page(public_id, arxiv_id, action)


@blueprint.route("/papers/<token>/<action>", methods=["GET", "POST"])
def paper_action_of_one_card(token: str, action: str):
    """A card's link in a message sent before `PAPERS`: a `PAPER` token of reader and paper."""
    if action not in ACTIONS:
        abort(404)
    signed = _signed(PAPER, token, 2)
    if signed is None:
        return invalid_link("paper")
    public_id, arxiv_id = signed
    return _action_page(public_id, arxiv_id, action)


def _action_page(public_id: str, arxiv_id: str, action: str):
    """The one-button page of an action on a paper; its POST carries the action out."""
    confirm = make_token(settings().secret(), PAPER_ACTION, [public_id, arxiv_id, action])
    if request.method == "POST" and _signed(PAPER_ACTION, request.form.get("confirm", ""), 3) != [
        public_id,
        arxiv_id,
        action,
    ]:
        return invalid_link("paper")
    with session_scope(settings()) as session:
        subscriber = store.subscriber_by_public_id(session, public_id)
        paper = store.paper_by_arxiv_id(session, arxiv_id)
        if subscriber is None or subscriber.status == SubscriberStatus.pending or paper is None:
            return gone()
        done = None
        if request.method == "POST":
            undo = request.form.get("undo") == "1"
            done = _apply(session, subscriber.id, paper.id, action, undo)
        row = store.reader_paper(session, subscriber.id, paper.id)
        context = {
            "paper": paper_item(paper),
            "state": _state(row),
        }
    question, button = ACTIONS[action]
    return page(
        "paper_action.html.j2",
        action=action,
        question=question,
        button=button,
        done=done,
        confirm=confirm,
        csrf_token=generate_csrf(),
        library_url=library_url("", settings().secret(), public_id),
        **context,
    )


def _signed(purpose: str, token: str, length: int) -> list[str] | None:
    """The list of `length` texts signed in a token made for `purpose`; None otherwise."""
    try:
        value = read_token(settings().secret(), purpose, token, expect=list)
    except InvalidToken:
        return None
    return value if len(value) == length else None


def _apply(session, subscriber_id: int, paper_id: int, action: str, undo: bool) -> str:
    """Carry out the action (or take it back); what to tell the reader."""
    if action == "save":
        if undo:
            removed = store.unsave_paper(session, subscriber_id, paper_id)
            return "Removed from your library." if removed else "It was not in your library."
        saved = store.save_paper(session, subscriber_id, paper_id)
        return "Saved to your library." if saved else "Already saved: it is in your library."
    rating = RATINGS[action]
    if undo:
        row = store.reader_paper(session, subscriber_id, paper_id)
        if row is None or row.rating != int(rating):
            return "Nothing to undo."
        store.rate_paper(session, subscriber_id, paper_id, None)
        return "Undone: this paper no longer counts either way."
    changed = store.rate_paper(session, subscriber_id, paper_id, rating)
    what = "more papers like this one" if rating == Rating.more else "fewer papers like this one"
    return f"Noted: {what}." if changed else f"Already noted: {what}."


def _state(row: ReaderPaper | None) -> dict[str, bool]:
    return {
        "save": row is not None and row.saved_at is not None,
        "more": row is not None and row.rating == int(Rating.more),
        "less": row is not None and row.rating == int(Rating.less),
    }
