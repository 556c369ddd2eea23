"""Save, "More like this" and "Less like this" from the email, and the reading list.

The scanner rule: a GET of a card's link records nothing; the page's POST records once, a
replay changes nothing; a token of one reader or paper opens nothing of another's; tampered
tokens and forms without CSRF are refused. The library lists what was saved, newest first, as
cards, BibTeX and Atom. A last test does it in Chromium.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import bibtexparser
import pytest
from werkzeug.serving import make_server

from newsletter import store
from newsletter.db import session_scope
from newsletter.models import Rating, SubscriberStatus, new_public_id
from newsletter.tokens import (
    LIBRARY,
    PAPER,
    PAPER_ACTION,
    PAPERS,
    UNSUBSCRIBE,
    DigestLinks,
    library_url,
    make_token,
    paper_link,
    papers_url,
    read_token,
)
from newsletter.web import create_app
from tests.helpers import SCREENSHOTS, paper, set_env, store_papers, subscribe
from tests.web_helpers import FORM, csrf_token, public_id

ADA, BO = "ada@example.org", "bo@example.org"
CONFIRM_FIELD = re.compile(r'name="confirm" value="([^"]+)"')


@pytest.fixture
def app(settings, cli, example_topics):
    subscribe(cli, ADA, "SLAM")
    subscribe(cli, BO, "SLAM")
    store_papers(settings, "SLAM", paper(1, "Visual SLAM at scale"), paper(2), paper(3))
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


def card_link(settings, email: str, arxiv_id: str, action: str, reader: str | None = None) -> str:
    """The path of a card's link, as the email carries it (`reader`: another public id)."""
    papers = papers_url("", settings.secret(), reader or public_id(settings, email))
    return f"{paper_link(papers, arxiv_id)}/{action}"


def old_card_link(settings, email: str, arxiv_id: str, action: str) -> str:
    """The path of a card's link in a message sent before `PAPERS`: one token a card."""
    token = make_token(settings.secret(), PAPER, [public_id(settings, email), arxiv_id])
    return f"/papers/{token}/{action}"


def library_path(settings, email: str) -> str:
    return library_url("", settings.secret(), public_id(settings, email))


def reading(settings, email: str) -> dict[str, tuple]:
    """arXiv id → (saved, rating, seed) of everything the reader did."""
    with session_scope(settings) as session:
        subscriber = store.get_subscriber(session, email)
        found = {}
        for number in (1, 2, 3):
            paper_row = store.paper_by_arxiv_id(session, f"2611.{number:05d}")
            if paper_row is None:
                continue
            row = store.reader_paper(session, subscriber.id, paper_row.id)
            if row is not None:
                found[paper_row.arxiv_id] = (row.saved_at is not None, row.rating, row.seed)
        return found


def press(client, path: str, **extra):
    """Open the link's page, then press its button, as a person does."""
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    fields = {
        "csrf_token": csrf_token(html),
        "confirm": CONFIRM_FIELD.search(html).group(1),
        **extra,
    }
    return client.post(path, data=fields)


# ------------------------------------------------------------------------------- the tokens


def test_a_readers_paper_links_are_one_token_of_theirs_and_the_paper(settings, monkeypatch):
    """A message's cards share the reader's `PAPERS` token, made with their other links; the
    paper's arXiv id follows it, old-style ids keep their slash and anything else is escaped."""
    monkeypatch.setattr(time, "time", lambda: 1_790_000_000.25)
    secret = settings.secret()
    reader = new_public_id()
    papers = DigestLinks("https://digest.example", secret, "2026-12-06").links(reader).papers
    assert papers == papers_url("https://digest.example", secret, reader)
    token = papers.rsplit("/", 1)[1]
    assert read_token(secret, PAPERS, token) == reader
    assert paper_link(papers, "2611.00001") == f"https://digest.example/papers/{token}/2611.00001"
    assert paper_link(papers, "hep-th/9901001").endswith(f"/{token}/hep-th/9901001")
    assert paper_link(papers, "a b?c#d").endswith(f"/{token}/a%20b%3Fc%23d")
    # Namespaced both ways: it opens no library nor unsubscribes; theirs open no papers.
    for purpose in (LIBRARY, UNSUBSCRIBE, PAPER):
        with pytest.raises(Exception, match="not valid"):
            read_token(secret, purpose, token)
        with pytest.raises(Exception, match="not valid"):
            read_token(secret, PAPERS, make_token(secret, purpose, reader))


def test_a_card_link_of_a_message_sent_before_still_works(settings, client):
    """Messages sent before `PAPERS` carry one `PAPER` token a card: `/papers/<token>/save`."""
    answer = press(client, old_card_link(settings, ADA, "2611.00002", "save"))
    assert answer.status_code == 200 and "Saved to your library." in answer.text
    assert reading(settings, ADA) == {"2611.00002": (True, None, False)}
    # The same reader and paper by today's link: already saved.
    again = press(client, card_link(settings, ADA, "2611.00002", "save"))
    assert "Already saved" in again.text


def test_an_old_style_arxiv_id_keeps_its_slash_in_the_link(settings, client):
    store_papers(
        settings, "SLAM", dataclasses.replace(paper(4), arxiv_id="hep-th/9901001", title="Strings")
    )
    link = card_link(settings, ADA, "hep-th/9901001", "more")
    assert link.endswith("/hep-th/9901001/more")
    answer = press(client, link)
    assert answer.status_code == 200 and "Noted: more papers like this one." in answer.text
    assert "Strings" in answer.text


# --------------------------------------------------------------------------- the scanner rule


def test_a_get_records_nothing_and_shows_one_button(settings, client):
    for action in ("save", "more", "less"):
        path = card_link(settings, ADA, "2611.00001", action)
        for method in (client.get, client.head):
            assert method(path).status_code == 200
    html = client.get(card_link(settings, ADA, "2611.00001", "save")).get_data(as_text=True)
    assert "Visual SLAM at scale" in html and "https://arxiv.org/abs/2611.00001" in html
    assert "Ada First" in html
    assert len(re.findall(r"<button", html)) == 1 and "Save to my library" in html
    assert "<script" not in html  # nothing a scanner that runs scripts could press
    assert reading(settings, ADA) == {}


def test_the_post_records_once_and_a_replay_changes_nothing(settings, client):
    path = card_link(settings, ADA, "2611.00001", "save")
    first = press(client, path)
    assert first.status_code == 200 and "Saved to your library." in first.get_data(as_text=True)
    assert library_path(settings, ADA) in first.get_data(as_text=True)
    with session_scope(settings) as session:
        saved_at = store.saved_papers(session, store.get_subscriber(session, ADA).id)[0][1]
    again = press(client, path)
    assert "Already saved" in again.get_data(as_text=True)
    with session_scope(settings) as session:
        assert store.saved_papers(session, store.get_subscriber(session, ADA).id)[0][1] == saved_at
    assert reading(settings, ADA) == {"2611.00001": (True, None, False)}

    more = press(client, card_link(settings, ADA, "2611.00002", "more"))
    assert "Noted: more papers like this one." in more.get_data(as_text=True)
    assert "Already noted" in press(client, card_link(settings, ADA, "2611.00002", "more")).text
    press(client, card_link(settings, ADA, "2611.00003", "less"))
    assert reading(settings, ADA) == {
        "2611.00001": (True, None, False),
        "2611.00002": (False, int(Rating.more), False),
        "2611.00003": (False, int(Rating.less), False),
    }
    # A later "less" replaces "more"; undo takes the rating back.
    press(client, card_link(settings, ADA, "2611.00002", "less"))
    assert reading(settings, ADA)["2611.00002"] == (False, int(Rating.less), False)
    undone = press(client, card_link(settings, ADA, "2611.00002", "less"), undo="1")
    assert "Undone" in undone.text
    assert reading(settings, ADA)["2611.00002"] == (False, None, False)
    # Undo of a save removes it from the library.
    press(client, path, undo="1")
    assert reading(settings, ADA)["2611.00001"] == (False, None, False)
    assert reading(settings, BO) == {}


def test_csrf_and_the_signed_action_are_required(settings, client):
    path = card_link(settings, ADA, "2611.00001", "save")
    html = client.get(path).get_data(as_text=True)
    confirm = CONFIRM_FIELD.search(html).group(1)
    no_csrf = client.post(path, data={"confirm": confirm}, content_type=FORM)
    assert no_csrf.status_code == 400
    fields = {"csrf_token": csrf_token(html)}
    assert client.post(path, data=fields).status_code == 400  # no signed action
    # The form's token of one action does not carry out another (nor of another paper).
    less = card_link(settings, ADA, "2611.00001", "less")
    assert client.post(less, data={**fields, "confirm": confirm}).status_code == 400
    other = card_link(settings, ADA, "2611.00002", "save")
    assert client.post(other, data={**fields, "confirm": confirm}).status_code == 400
    assert reading(settings, ADA) == {}


def test_one_readers_token_opens_nothing_of_anothers(settings, client):
    ada_path = card_link(settings, ADA, "2611.00001", "save")
    ada_confirm = CONFIRM_FIELD.search(client.get(ada_path).text).group(1)
    bo_path = card_link(settings, BO, "2611.00001", "save")
    bo_page = client.get(bo_path).text
    answer = client.post(bo_path, data={"csrf_token": csrf_token(bo_page), "confirm": ada_confirm})
    assert answer.status_code == 400
    assert reading(settings, ADA) == {} and reading(settings, BO) == {}
    # A library token of Ada's shows Ada's library only; her card token is no library token.
    press(client, ada_path)
    assert "Visual SLAM" in client.get(library_path(settings, ADA)).text
    assert "Visual SLAM" not in client.get(library_path(settings, BO)).text
    card_token = ada_path.split("/")[2]
    assert client.get(f"/library/{card_token}").status_code == 400


def test_tampered_and_foreign_tokens_are_refused_without_detail(settings, client):
    path = card_link(settings, ADA, "2611.00001", "save")
    token = path.split("/")[2]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    secret = settings.secret()
    reader = public_id(settings, ADA)
    other_secret = "another secret of at least 32 chars!!"
    for bad in (
        tampered,
        "nonsense",
        make_token(secret, UNSUBSCRIBE, reader),  # another purpose
        make_token(secret, LIBRARY, reader),
        make_token(secret, PAPER, [reader, "2611.00001"]),  # an old-style card's, not a reader's
        make_token(other_secret, PAPERS, reader),
    ):
        answer = client.get(f"/papers/{bad}/2611.00001/save")
        assert answer.status_code == 400, bad
        assert "This link is not valid" in answer.text
        assert "2611.00001" not in answer.text and "Traceback" not in answer.text
    old = old_card_link(settings, ADA, "2611.00001", "save").split("/")[2]
    for bad in (
        old[:-3] + ("AAA" if not old.endswith("AAA") else "BBB"),
        token,  # a reader's token is no card's
        make_token(secret, PAPER_ACTION, [reader, "2611.00001", "save"]),  # another purpose
        make_token(secret, PAPER, [reader]),  # not a pair
        make_token(other_secret, PAPER, [reader, "2611.00001"]),
    ):
        answer = client.get(f"/papers/{bad}/save")
        assert answer.status_code == 400, bad
        assert "This link is not valid" in answer.text
        assert "2611.00001" not in answer.text and "Traceback" not in answer.text
    assert client.get(f"/papers/{token}/2611.00001/delete").status_code == 404
    assert client.get(f"/papers/{old}/delete").status_code == 404


def test_a_gone_reader_and_an_unknown_paper_get_the_same_page(settings, client, cli):
    unknown_paper = client.get(card_link(settings, ADA, "9999.99999", "save"))
    stranger = client.get(card_link(settings, ADA, "2611.00001", "save", reader="x" * 22))
    assert unknown_paper.status_code == stranger.status_code == 404
    assert unknown_paper.text == stranger.text
    link = card_link(settings, BO, "2611.00001", "save")
    cli("subscribers", "remove", BO, "--purge")
    assert client.get(link).text == stranger.text


# --------------------------------------------------------------------------------- the library


def save_at(settings, email: str, arxiv_id: str, day: int) -> None:
    with session_scope(settings) as session:
        reader = store.get_subscriber(session, email).id
        paper_id = store.paper_by_arxiv_id(session, arxiv_id).id
        store.save_paper(session, reader, paper_id, datetime(2026, 11, day, tzinfo=UTC))


def test_the_library_lists_saved_papers_newest_first_with_bibtex_and_atom(settings, client):
    save_at(settings, ADA, "2611.00002", 20)
    save_at(settings, ADA, "2611.00001", 22)
    save_at(settings, ADA, "2611.00003", 21)
    path = library_path(settings, ADA)
    html = client.get(path).text
    order = [html.index(f"arXiv:2611.0000{n}") for n in (1, 3, 2)]
    assert order == sorted(order)
    assert html.count('<li class="paper">') == 3 and "3 saved papers" in html
    assert 'class="paper-authors"' in html  # the cards of the digest pages
    assert client.get(path).headers["Cache-Control"] == "no-store"

    bib = client.get(f"{path}/library.bib")
    assert bib.headers["Content-Type"].startswith("application/x-bibtex")
    assert "attachment" in bib.headers["Content-Disposition"]
    entries = bibtexparser.parse_string(bib.text).entries
    assert [entry["eprint"] for entry in entries] == ["2611.00001", "2611.00003", "2611.00002"]
    assert entries[0]["title"] == "Visual SLAM at scale"
    assert len({entry.key for entry in entries}) == 3

    atom = ET.fromstring(client.get(f"{path}/atom.xml").data)  # noqa: S314 - our own feed
    ns = {"a": "http://www.w3.org/2005/Atom"}
    ids = [entry.findtext("a:id", namespaces=ns) for entry in atom.findall("a:entry", ns)]
    assert ids == [f"https://arxiv.org/abs/2611.0000{n}" for n in (1, 3, 2)]
    assert atom.findtext("a:updated", namespaces=ns) == "2026-11-22T00:00:00Z"


def test_removing_from_the_library_is_a_csrf_checked_post(settings, client):
    save_at(settings, ADA, "2611.00001", 20)
    path = library_path(settings, ADA)
    html = client.get(path).text
    assert client.post(f"{path}/remove", data={"paper": "2611.00001"}).status_code == 400
    assert reading(settings, ADA)["2611.00001"][0] is True
    answer = client.post(
        f"{path}/remove", data={"paper": "2611.00001", "csrf_token": csrf_token(html)}
    )
    assert answer.status_code == 303
    assert "Removed from your library." in client.get(answer.headers["Location"]).text
    assert reading(settings, ADA)["2611.00001"][0] is False
    assert "Nothing saved yet" in client.get(path).text


def test_a_bad_library_token_is_refused_and_preferences_link_the_library(settings, client):
    for suffix in ("", "/library.bib", "/atom.xml"):
        assert client.get(f"/library/nonsense{suffix}").status_code == 400
    with session_scope(settings) as session:
        store.set_status(
            session, store.get_subscriber(session, ADA), SubscriberStatus.unsubscribed, "cli"
        )
    # An unsubscribed reader keeps their library.
    assert client.get(library_path(settings, ADA)).status_code == 200
    preferences = make_token(settings.secret(), "preferences", public_id(settings, ADA))
    assert library_path(settings, ADA) in client.get(f"/preferences/{preferences}").text


# -------------------------------------------------------------------------------- in Chromium


@pytest.mark.parametrize("database_url", [None])  # the browser is the point, not the backend
def test_a_reader_saves_a_paper_from_its_link_in_a_browser(
    browser, settings, cli, example_topics, monkeypatch
):
    subscribe(cli, ADA, "SLAM")
    store_papers(settings, "SLAM", paper(1, "Visual SLAM at scale"))
    holder = {}
    server = make_server("127.0.0.1", 0, lambda e, s: holder["app"](e, s), threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    holder["app"] = create_app(set_env(monkeypatch, BASE_URL=base_url))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    page = browser.new_page(viewport={"width": 375, "height": 900})  # a phone
    try:
        page.goto(base_url + card_link(settings, ADA, "2611.00001", "save"))
        assert page.locator("h1").inner_text() == "Save this paper?"
        assert reading(settings, ADA) == {}  # opening the link recorded nothing
        page.get_by_role("button", name="Save to my library").click()
        page.wait_for_selector("text=Saved to your library.")
        page.get_by_role("link", name="Your library").click()
        page.wait_for_selector("text=1 saved paper")
        assert "Visual SLAM at scale" in page.locator("main").inner_text()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "web-library-375.png"), full_page=True)
        assert reading(settings, ADA) == {"2611.00001": (True, None, False)}
    finally:
        page.close()
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
