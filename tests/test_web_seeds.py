"""A reader seeds their ranking from their library page: "Start from papers you know" takes
arXiv ids and a BibTeX file, matches them with the CLI's own code against a local arXiv serving
real responses, marks them as seeds and reports each entry on the page, escaped. A GET records
nothing; the POST needs its CSRF token and the reader's own library token; a file over the
limit is refused; one request looks up only so much.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest

from newsletter import store, tokens
from newsletter.db import session_scope
from newsletter.models import Paper, ReaderPaper
from newsletter.web import create_app, library, limits
from newsletter.worker.fetchlock import fetch_lock
from tests.arxiv_server import ArxivServer, Reply, shared_fixture
from tests.atom import Entry, feed
from tests.helpers import REPO, paper, set_env, store_papers, subscribe
from tests.web_helpers import csrf_token, public_id

ADA, BO = "ada@example.org", "bo@example.org"
ONE_ID = "current/id-lookup_1707.08567.xml"
THREE = "current/versions-doi-journalref_3.xml"


@pytest.fixture
def arxiv(settings, cli, example_topics, monkeypatch) -> Iterator[ArxivServer]:
    """A local arXiv, and Ada and Bo on the list."""
    with ArxivServer() as server:
        set_env(monkeypatch, arxiv_api_url=server.url, arxiv_backoff="0.01")
        subscribe(cli, ADA, "SLAM")
        subscribe(cli, BO, "SLAM")
        yield server


@pytest.fixture
def client(arxiv, monkeypatch):
    return create_app(set_env(monkeypatch)).test_client()


def library_path(settings, email: str) -> str:
    return tokens.library_url("", settings.secret(), public_id(settings, email))


def seeds_of(settings, email: str) -> set[str]:
    """arXiv ids of the reader's rows in reader_papers with `seed` set."""
    with session_scope(settings) as session:
        reader = store.get_subscriber(session, email).id
        rows = session.query(Paper.arxiv_id).join(ReaderPaper, ReaderPaper.paper_id == Paper.id)
        marked = rows.filter(ReaderPaper.subscriber_id == reader, ReaderPaper.seed.is_(True))
        return {arxiv_id for (arxiv_id,) in marked}


def rows_of(settings, email: str) -> int:
    with session_scope(settings) as session:
        reader = store.get_subscriber(session, email).id
        return session.query(ReaderPaper).filter(ReaderPaper.subscriber_id == reader).count()


def send_seeds(client, settings, email: str, ids: str = "", bibtex: tuple | None = None):
    """Open the reader's library page, then send its seed form, as a browser does."""
    path = library_path(settings, email)
    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'action="{path}/seeds"' in html and 'enctype="multipart/form-data"' in html
    data: dict = {"csrf_token": csrf_token(html), "ids": ids}
    if bibtex is not None:
        name, content = bibtex
        data["bibtex"] = (io.BytesIO(content), name)
    return client.post(f"{path}/seeds", data=data, content_type="multipart/form-data")


def report_rows(html: str) -> list[tuple[str, str, str]]:
    """(entry, result, paper or reason) of each row of the page's report, tags stripped."""
    rows = re.findall(r'<tr class="seed-\w+">\s*(.*?)\s*</tr>', html, re.S)
    cells = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows]
    return [tuple(re.sub(r"<[^>]+>", "", cell).strip() for cell in row) for row in cells]


def test_the_page_shows_the_form_and_a_get_records_nothing(settings, client, arxiv):
    path = library_path(settings, ADA)
    for _ in range(2):
        html = client.get(path).get_data(as_text=True)
        assert "Start from papers you know" in html
        assert 'name="ids"' in html and 'type="file"' in html and 'name="bibtex"' in html
        assert "up to 1 MB" in html and "At most 50 new arXiv ids and 5 titles" in html
    assert client.get(f"{path}/seeds").status_code == 405  # only the POST is an address
    assert arxiv.requests == [] and rows_of(settings, ADA) == 0


def test_ids_as_people_write_them_are_matched_and_marked_as_seeds(settings, client, arxiv):
    arxiv.serve(shared_fixture(THREE), id_list="2410.08355,2207.07410")
    typed = "arXiv:2410.08355v1, https://arxiv.org/abs/2207.07410\nnot-an-id"
    response = send_seeds(client, settings, ADA, typed)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert report_rows(html) == [
        ("arXiv:2410.08355v1", "matched", "2410.08355 (by arXiv id)"),
        ("https://arxiv.org/abs/2207.07410", "matched", "2207.07410 (by arXiv id)"),
        ("not-an-id", "invalid", "not an arXiv identifier (like 2405.01234)"),
    ]
    assert "2 matched, 1 invalid; 2 new seed paper(s)." in html
    assert [request.params["id_list"] for request in arxiv.requests] == ["2410.08355,2207.07410"]
    assert seeds_of(settings, ADA) == {"2410.08355", "2207.07410"}
    assert seeds_of(settings, BO) == set()  # Ada's token marks Ada's papers only
    # Stored as fetched papers are: the real response's DOI came with it.
    with session_scope(settings) as session:
        assert store.paper_by_arxiv_id(session, "2207.07410").doi == "10.1002/pro.4380"
    # Again: nothing new, and arXiv is not asked (the papers are stored).
    again = send_seeds(client, settings, ADA, "2410.08355").get_data(as_text=True)
    assert "1 matched; 0 new seed paper(s)." in again and len(arxiv.requests) == 1


def test_a_bibtex_upload_keeps_the_good_entries_and_reports_the_broken_one(settings, client, arxiv):
    store_papers(settings, "SLAM", paper(7))  # stored with no DOI; named by its id below
    arxiv.serve(shared_fixture(ONE_ID), id_list="1707.08567")
    bib = (
        "@article{aew10,\n"
        "  title = {Proceedings of Workshop AEW10},\n"
        "  journal = {arXiv preprint arXiv:1707.08567},\n"
        "}\n"
        "@article{broken_entry,\n"
        "  title = {A title that never closes,\n"
        "  author = {Someone},\n"
        "\n"
        "@misc{local, eprint = {2611.00007}, archivePrefix = {arXiv}}\n"
        "@inproceedings{nothing_to_match, booktitle = {Proceedings}}\n"
    )
    response = send_seeds(client, settings, ADA, bibtex=("zotero.bib", bib.encode()))
    assert response.status_code == 200
    rows = report_rows(response.get_data(as_text=True))
    assert rows == [
        ("zotero.bib:1 aew10", "matched", "1707.08567 (by arXiv id)"),
        ("zotero.bib:9 local", "matched", "2611.00007 (by arXiv id)"),
        (
            "zotero.bib:5 broken_entry",
            "invalid",
            "not valid BibTeX: an entry that does not close (a missing brace or quote)",
        ),
        ("zotero.bib:10 nothing_to_match", "invalid", "has no arXiv id, DOI or title to match"),
    ]
    assert seeds_of(settings, ADA) == {"1707.08567", "2611.00007"}
    assert [request.params["id_list"] for request in arxiv.requests] == ["1707.08567"]


def test_nothing_matched_is_a_report_not_an_error(settings, client, arxiv):
    arxiv.serve(shared_fixture("current/empty-result.xml"), id_list="2612.99999")
    response = send_seeds(client, settings, ADA, "2612.99999")
    assert response.status_code == 200
    assert report_rows(response.get_data(as_text=True)) == [
        ("2612.99999", "not found", "arXiv has no paper 2612.99999")
    ]
    empty = send_seeds(client, settings, ADA, "  \n ")
    assert empty.status_code == 200
    assert "Name a paper: an arXiv id, or a BibTeX file." in empty.get_data(as_text=True)
    assert seeds_of(settings, ADA) == set() and rows_of(settings, ADA) == 0


def test_one_request_looks_up_at_most_so_many_ids_and_titles(settings, client, arxiv, monkeypatch):
    monkeypatch.setattr(library, "SEED_LOOKUPS", library.LookupLimit(ids=3, titles=1))
    store_papers(settings, "SLAM", paper(9))
    wanted = [f"2611.1000{n}" for n in range(1, 6)]
    arxiv.route(Reply(body=feed([Entry(i, f"Paper {i}") for i in wanted[:3]])))
    bib = b"@article{first, title={Deep Twins}}\n@article{second, title={Other Twins}}\n"
    typed = " ".join([*wanted, "2611.00009"])  # the stored one costs nothing: never skipped
    html = send_seeds(client, settings, ADA, typed, ("refs.bib", bib)).get_data(as_text=True)
    assert "At most 3 new arXiv ids and 1 titles" in html
    rows = report_rows(html)
    assert [row[1] for row in rows] == [
        *["matched"] * 3, "not looked at", "not looked at", "matched", "not found", "not looked at"
    ]  # fmt: skip
    assert rows[3][2] == (
        "not looked at: at most 3 arXiv ids are looked up in one go; send the rest again"
    )
    assert rows[7][0] == "refs.bib:2 second" and "at most 1 titles" in rows[7][2]
    asked = [request.params.get("id_list") or request.search_query for request in arxiv.requests]
    assert asked == [",".join(wanted[:3]), 'ti:"Deep Twins"']
    assert seeds_of(settings, ADA) == {*wanted[:3], "2611.00009"}


def test_the_readme_states_the_limits_the_app_has():
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert library.SEED_LOOKUPS == library.LookupLimit(ids=50, titles=5)
    assert limits.SEED_UPLOAD == 1024 * 1024
    assert "**Start from papers you know**" in readme
    assert "a BibTeX file of up to 1 MB" in readme
    assert "at most 50 arXiv ids not stored yet and 5 titles" in readme


def test_an_upload_over_the_limit_is_refused_and_others_stay_small(settings, client, arxiv):
    path = library_path(settings, ADA)
    token = csrf_token(client.get(path).get_data(as_text=True))
    too_big = b"@misc{x, eprint={1707.08567}}\n" + b"%" * limits.SEED_UPLOAD
    response = client.post(
        f"{path}/seeds",
        data={"csrf_token": token, "bibtex": (io.BytesIO(too_big), "big.bib")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert "This file is too large" in html and "up to 1 MB" in html
    assert arxiv.requests == [] and rows_of(settings, ADA) == 0
    # Over the other forms' 64 KB but within 1 MB: read and matched.
    store_papers(settings, "SLAM", paper(7))
    padded = b"@misc{local, eprint={2611.00007}}\n" + b"%" * (200 * 1024) + b"\n"
    ok = send_seeds(client, settings, ADA, bibtex=("big.bib", padded))
    assert ok.status_code == 200 and seeds_of(settings, ADA) == {"2611.00007"}
    # The library's other form keeps the site's limit.
    other = client.post(f"{path}/remove", data={"csrf_token": token, "paper": "x" * 100_000})
    assert other.status_code == 413
    assert "larger than any form of this site sends" in other.get_data(as_text=True)


def chunked_upload(client, path: str, token: str, content: bytes):
    """The seed form sent as a chunked body (no Content-Length), a file in it."""
    boundary = "b0und4ry"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="bibtex"; filename="big.bib"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.post(
        f"{path}/seeds",
        input_stream=io.BytesIO(body),
        headers={
            "Transfer-Encoding": "chunked",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )


def test_a_chunked_upload_is_bounded_by_the_same_limit(settings, client, arxiv):
    path = library_path(settings, ADA)
    token = csrf_token(client.get(path).get_data(as_text=True))
    response = chunked_upload(client, path, token, b"%" * (limits.SEED_UPLOAD + 10))
    assert response.status_code == 413
    assert "This file is too large" in response.get_data(as_text=True)
    store_papers(settings, "SLAM", paper(7))
    padded = b"@misc{local, eprint={2611.00007}}\n" + b"%" * (200 * 1024) + b"\n"
    assert chunked_upload(client, path, token, padded).status_code == 200
    assert seeds_of(settings, ADA) == {"2611.00007"}


def test_hostile_text_is_shown_escaped(settings, client, arxiv):
    script = "<script>alert(1)</script>"
    bib = b"@article{a<svg>b, author={Someone}}\n"
    response = send_seeds(client, settings, ADA, script, ("<i>evil.bib", bib))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;i&gt;evil.bib:1 a&lt;svg&gt;b" in html, report_rows(html)
    assert "<script>" not in html and "<svg>" not in html and "<i>evil" not in html
    assert [row[1] for row in report_rows(html)] == ["invalid", "invalid"]
    assert arxiv.requests == []


def test_the_form_needs_its_csrf_token(settings, client, arxiv):
    arxiv.serve(shared_fixture(ONE_ID), id_list="1707.08567")
    path = library_path(settings, ADA)
    client.get(path)
    response = client.post(f"{path}/seeds", data={"ids": "1707.08567"})
    assert response.status_code == 400
    assert "did not come from this site" in response.get_data(as_text=True)
    forged = client.post(f"{path}/seeds", data={"ids": "1707.08567", "csrf_token": "forged"})
    assert forged.status_code == 400
    assert arxiv.requests == [] and seeds_of(settings, ADA) == set()


def test_a_tampered_or_foreign_token_opens_nothing(settings, client, arxiv):
    arxiv.serve(shared_fixture(ONE_ID), id_list="1707.08567")
    path = library_path(settings, ADA)
    token = csrf_token(client.get(path).get_data(as_text=True))
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    preferences = tokens.make_token(settings.secret(), "preferences", public_id(settings, ADA))
    for wrong in (tampered, f"/library/{preferences}"):
        response = client.post(f"{wrong}/seeds", data={"csrf_token": token, "ids": "1707.08567"})
        assert response.status_code == 400
        assert "The library link is broken" in response.get_data(as_text=True)
    assert arxiv.requests == [] and seeds_of(settings, ADA) == set()
    # Bo's own token marks Bo's seeds, never Ada's.
    send_seeds(client, settings, BO, "1707.08567")
    assert seeds_of(settings, BO) == {"1707.08567"} and seeds_of(settings, ADA) == set()


def test_a_form_sent_while_another_process_asks_arxiv_waits_its_turn(settings, client, arxiv):
    """The daily fetch's lock is the site's: a seeding that finds it held asks arXiv nothing,
    marks nothing, and says to send the form again."""
    with fetch_lock(settings):
        response = send_seeds(client, settings, ADA, "1707.08567")
    assert response.status_code == 200
    assert "send this again in a minute" in response.get_data(as_text=True)
    assert arxiv.requests == [] and rows_of(settings, ADA) == 0
