"""The preferences page: topics, language, mail format, a pause, leaving one topic or all,
coming back."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest

from newsletter import store
from newsletter.daily import send
from newsletter.db import session_scope
from newsletter.models import MailFormat
from newsletter.tokens import PREFERENCES, read_token
from newsletter.web import create_app
from tests.helpers import DAY1, outbox, paper, store_papers, subscribe
from tests.web_helpers import csrf_token, state, submit, token_path

ADA, BO = "ada@example.org", "bo@example.org"


@pytest.fixture
def app(settings, cli, example_topics):
    subscribe(cli, ADA, "SLAM", "NeRF")
    subscribe(cli, BO, "NeRF")
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def path(settings, app) -> str:
    return token_path(settings, "preferences", ADA)


def act(client, path: str, action: str, **fields):
    return submit(client, path, {"action": action, **fields})


def mail_format(settings, email: str) -> MailFormat:
    """The subscriber's mail format, read back from the database."""
    with session_scope(settings) as session:
        return store.get_subscriber(session, email).format


def last_detail(settings, email: str) -> str:
    with session_scope(settings) as session:
        return store.events_of(session, store.get_subscriber(session, email))[-1].detail


def set_format(settings, email: str, value: MailFormat) -> None:
    with session_scope(settings) as session:
        store.get_subscriber(session, email).format = value


def test_the_page_shows_the_subscription_with_labelled_controls(client, path):
    page = client.get(path)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert ADA in html and "You get the digest of SLAM, NeRF" in html
    assert re.search(r'value="slam" checked', html) and re.search(r'value="nerf" checked', html)
    assert not re.search(r'value="mllm" checked', html)
    for control in ("language-field", "weeks-field", "topic-slam"):
        assert f'<label for="{control}">' in html or f'<label for="{control}"' in html
    for action in ("save", "pause", "unsubscribe"):
        assert f'name="action" value="{action}"' in html
    assert html.count('name="csrf_token"') == 3  # a form each, each with its token


def test_changing_topics_and_language(settings, client, path):
    answer = act(client, path, "save", topics=["mllm", "slam"], language="ja")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("?done=save")
    now = state(settings, ADA)
    assert (now.topics, now.language, now.status) == (("MLLM", "SLAM"), "ja", "active")
    assert now.events[-1] == ("changed", "web")
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Your preferences are saved." in shown and 'role="status"' in shown

    again = act(client, path, "save", topics=["mllm", "slam"], language="ja")
    assert again.headers["Location"].endswith("?done=unchanged")
    assert state(settings, ADA).events == now.events  # nothing changed, nothing logged


def test_the_page_shows_the_current_format_checked(settings, client, path):
    html = client.get(path).get_data(as_text=True)
    fieldset = re.search(r'<fieldset class="field" id="format-field">.*?</fieldset>', html, re.S)
    assert fieldset and "<legend>Email format</legend>" in fieldset.group(0)
    assert re.search(r'id="format-html" name="format" value="html" checked>', html)
    assert re.search(r'id="format-text" name="format" value="text">', html)
    assert '<label for="format-html">HTML email (with a plain-text version)</label>' in html
    assert '<label for="format-text">Plain text only</label>' in html
    assert "as plain text" not in html

    set_format(settings, ADA, MailFormat.text)
    html = client.get(path).get_data(as_text=True)
    assert re.search(r'id="format-text" name="format" value="text" checked>', html)
    assert re.search(r'id="format-html" name="format" value="html">', html)
    assert "abstracts in English, as plain text." in html


def test_choosing_plain_text(settings, client, path):
    before = state(settings, ADA)
    answer = act(client, path, "save", topics=["slam", "nerf"], language="en", format="text")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("?done=save")
    assert mail_format(settings, ADA) == MailFormat.text
    now = state(settings, ADA)
    assert (now.topics, now.language) == (before.topics, before.language)
    assert now.events == (*before.events, ("changed", "web"))  # only the format: a change
    assert last_detail(settings, ADA) == "SLAM, NeRF (en); format text"
    html = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert re.search(r'value="text" checked>', html)

    again = act(client, path, "save", topics=["slam", "nerf"], language="en", format="text")
    assert again.headers["Location"].endswith("?done=unchanged")
    assert state(settings, ADA).events == now.events  # nothing changed, nothing logged

    back = act(client, path, "save", topics=["slam", "nerf"], language="en", format="html")
    assert back.headers["Location"].endswith("?done=save")
    assert mail_format(settings, ADA) == MailFormat.html
    assert last_detail(settings, ADA) == "SLAM, NeRF (en); format html"


def test_the_detail_names_the_format_only_when_it_changes(settings, client, path):
    act(client, path, "save", topics=["slam"], language="en", format="html")
    assert last_detail(settings, ADA) == "SLAM (en)"
    assert mail_format(settings, ADA) == MailFormat.html


def test_a_form_without_the_format_keeps_it(settings, client, path):
    set_format(settings, ADA, MailFormat.text)
    answer = act(client, path, "save", topics=["slam"], language="en")
    assert answer.status_code == 303
    assert mail_format(settings, ADA) == MailFormat.text
    assert last_detail(settings, ADA) == "SLAM (en)"


@pytest.mark.parametrize("value", ["pdf", "", "html,text", "<b>text</b>"])
def test_a_bogus_format_changes_nothing(settings, client, path, value):
    before = state(settings, ADA)
    answer = act(client, path, "save", topics=["mllm"], language="ja", format=value)
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert "Choose an email format from the list." in html and "<b>text</b>" not in html
    assert state(settings, ADA) == before and mail_format(settings, ADA) == MailFormat.html


def test_leaving_one_topic(settings, client, path):
    act(client, path, "save", topics=["nerf"], language="en")
    assert state(settings, ADA).topics == ("NeRF",)
    assert state(settings, BO).topics == ("NeRF",)  # nobody else changes


def test_unticking_every_topic_is_explained(settings, client, path):
    answer = act(client, path, "save", language="en")
    assert answer.status_code == 400
    assert "Choose at least one topic" in answer.get_data(as_text=True)
    assert state(settings, ADA).topics == ("SLAM", "NeRF")


@pytest.mark.parametrize(
    "fields",
    [
        {"topics": ["slam", "no-such-topic"], "language": "en"},
        {"topics": ["slam"], "language": "xx-bad-"},
        {"topics": ["slam"], "language": "tlh"},
    ],
)
def test_bad_choices_change_nothing(settings, client, path, fields):
    assert act(client, path, "save", **fields).status_code == 400
    now = state(settings, ADA)
    assert (now.topics, now.language) == (("SLAM", "NeRF"), "en")


def test_a_language_the_operator_set_is_kept(settings, cli, client, path):
    cli("subscribers", "edit", ADA, "--lang", "gsw")  # Swiss German: not in the list
    html = client.get(path).get_data(as_text=True)
    assert re.search(r'value="gsw" lang="gsw" selected', html)
    assert act(client, path, "save", topics=["slam"], language="gsw").status_code == 303
    assert state(settings, ADA).language == "gsw"


def test_pausing_skips_digests_until_the_day(settings, client, path, monkeypatch):
    answer = act(client, path, "pause", weeks="2")
    assert answer.status_code == 303
    today = datetime.now(settings.zone).date()
    until = today + timedelta(weeks=2)
    now = state(settings, ADA)
    assert now.paused_until == until and now.status == "active"
    assert now.events[-1] == ("paused", "web")
    html = client.get(path).get_data(as_text=True)
    assert f'No digest until <time datetime="{until}">' in html
    assert 'name="action" value="resume"' in html

    store_papers(settings, "NeRF", paper(1))
    send.send(settings, today)
    assert set(outbox(settings)) == {BO}  # Ada is paused; Bo is not
    store_papers(settings, "NeRF", paper(2))
    send.send(settings, until)
    assert ADA in outbox(settings)  # the pause is over on its last day


def test_resuming(settings, client, path):
    act(client, path, "pause", weeks="4")
    answer = act(client, path, "resume")
    assert answer.status_code == 303
    now = state(settings, ADA)
    assert now.paused_until is None and now.events[-1] == ("resumed", "web")


@pytest.mark.parametrize("weeks", ["0", "3", "-1", "52", "x", ""])
def test_only_the_offered_pauses(settings, client, path, weeks):
    assert act(client, path, "pause", weeks=weeks).status_code == 400
    assert state(settings, ADA).paused_until is None


def test_leaving_everything_and_coming_back(settings, client, path):
    answer = act(client, path, "unsubscribe")
    assert answer.status_code == 303
    now = state(settings, ADA)
    assert now.status == "unsubscribed" and now.events[-1] == ("unsubscribed", "web")
    html = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "You are unsubscribed" in html and 'value="resubscribe"' in html
    assert 'value="save"' not in html and 'value="pause"' not in html

    store_papers(settings, "SLAM", paper(1))
    send.send(settings, DAY1)
    assert ADA not in outbox(settings)

    assert 'name="format" value="html" checked' in html

    back = act(client, path, "resubscribe", topics=["slam"], language="fr", format="text")
    assert back.status_code == 303
    now = state(settings, ADA)
    assert (now.status, now.topics, now.language) == ("active", ("SLAM",), "fr")
    assert mail_format(settings, ADA) == MailFormat.text
    assert now.events[-2:] == (("changed", "web"), ("active", "web"))


def test_a_bounced_address_can_come_back(settings, client, path):
    from newsletter import store
    from newsletter.db import session_scope
    from newsletter.models import SubscriberStatus

    with session_scope(settings) as session:
        subscriber = store.get_subscriber(session, ADA)
        store.set_status(session, subscriber, SubscriberStatus.bounced, "bounce")
    assert "came back undelivered" in client.get(path).get_data(as_text=True)
    act(client, path, "resubscribe", topics=["slam"], language="en")
    assert state(settings, ADA).status == "active"


@pytest.mark.parametrize("action", ["resubscribe", "nonsense", ""])
def test_actions_that_do_not_fit_change_nothing(settings, client, path, action):
    before = state(settings, ADA)
    answer = act(client, path, action, topics=["mllm"], language="en")
    assert answer.status_code == 400
    assert state(settings, ADA) == before


def test_actions_of_an_active_subscriber_are_refused_after_leaving(settings, client, path):
    act(client, path, "unsubscribe")
    for action in ("save", "pause", "unsubscribe"):
        assert act(client, path, action, topics=["slam"], weeks="2").status_code == 400
    assert state(settings, ADA).status == "unsubscribed"


def test_every_form_needs_its_csrf_token(settings, client, app, path):
    for action in ("save", "pause", "unsubscribe"):
        fields = {"action": action, "topics": ["mllm"], "language": "en", "weeks": "2"}
        assert client.post(path, data=fields).status_code == 400
        token = csrf_token(client.get(path).get_data(as_text=True))
        other_browser = app.test_client()
        assert other_browser.post(path, data={**fields, "csrf_token": token}).status_code == 400
    now = state(settings, ADA)
    assert (now.status, now.topics, now.paused_until) == ("active", ("SLAM", "NeRF"), None)


def test_bad_links_get_a_generic_page(settings, client, path, subtests):
    token = path.rsplit("/", 1)[1]
    for kind, bad in {
        "tampered": "/preferences/" + ("A" if token[0] != "A" else "B") + token[1:],
        "truncated": path[:-4],
        "garbage": "/preferences/nonsense",
        "unsubscribe token": token_path(settings, "unsubscribe", ADA).replace(
            "/unsubscribe/", "/preferences/"
        ),
    }.items():
        with subtests.test(kind):
            answer = client.get(bad)
            assert answer.status_code == 400
            assert "This link is not valid" in answer.get_data(as_text=True)
            assert submit(client, path, {"action": "unsubscribe"}, action=bad).status_code == 400
    assert state(settings, ADA).status == "active"


def test_a_link_of_someone_no_longer_on_the_list(settings, cli, client, path):
    cli("subscribers", "remove", ADA, "--purge")
    answer = client.get(path)
    assert answer.status_code == 404
    assert 'href="/subscribe"' in answer.get_data(as_text=True)


def test_the_unsubscribe_page_links_the_preferences_page(settings, client, path):
    page = client.get(token_path(settings, "unsubscribe", ADA)).get_data(as_text=True)
    # Made a moment later than `path`, the token may carry the next second: compare whom it
    # opens, not its text.
    (token,) = re.findall(r'href="/preferences/([^"]+)"', page)
    with session_scope(settings) as session:
        public_id = store.get_subscriber(session, ADA).public_id
    assert read_token(settings.secret(), PREFERENCES, token) == public_id
    assert client.get(f"/preferences/{token}").status_code == 200


def test_paused_until_a_day_in_the_past_shows_as_subscribed(settings, client, path):
    from newsletter import store
    from newsletter.db import session_scope

    with session_scope(settings) as session:
        store.get_subscriber(session, ADA).paused_until = date(2020, 1, 1)
    html = client.get(path).get_data(as_text=True)
    assert "You get the digest of" in html and "No digest until" not in html


# ---------------------------------------------------------------- followed authors and ranking


def textarea(html: str) -> str:
    """What the "Authors you follow" field holds, as the page sends it (escaped)."""
    found = re.search(
        r'<textarea id="follows-field" name="follows"[^>]*>(.*?)</textarea>', html, re.S
    )
    assert found, "the page has no follows field"
    return found.group(1)


def ranking_ticked(html: str) -> bool:
    found = re.search(
        r'<input type="checkbox" id="ranking-field" name="ranking" value="on"( checked)?', html
    )
    assert found, "the page has no ranking switch"
    return bool(found.group(1))


def save(client, path: str, follows_text: str, ranking_on: bool = True, **fields):
    """The save form as a browser posts it: the hidden `off`, then the box's `on` if ticked."""
    fields = {"topics": ["slam", "nerf"], "language": "en", **fields}
    return act(
        client,
        path,
        "save",
        follows=follows_text,
        ranking=["off", "on"] if ranking_on else ["off"],
        **fields,
    )


def test_the_page_says_how_far_the_reader_is_from_a_ranking_of_their_own(settings, client, path):
    store_papers(settings, "SLAM", paper(1), paper(2), paper(3))
    html = client.get(path).get_data(as_text=True)
    assert "once you have saved, liked or named 3 papers (0 so far)" in html
    with session_scope(settings) as session:
        ada = store.get_subscriber(session, ADA).id
        for arxiv_id in ("2611.00001", "2611.00002", "2611.00003"):
            store.save_paper(session, ada, store.paper_by_arxiv_id(session, arxiv_id).id)
    html = client.get(path).get_data(as_text=True)
    assert "Your digest is ordered from the 3 papers you saved, liked or named." in html


def test_the_page_has_labelled_follows_and_ranking_fields(client, path):
    html = client.get(path).get_data(as_text=True)
    assert '<label for="follows-field">Authors you follow</label>' in html
    assert '<label for="ranking-field">Order my papers by what I saved and rated</label>' in html
    assert textarea(html) == "" and ranking_ticked(html)  # a new reader: no one, ranking on
    assert re.search(r'<a href="/library/[\w.-]+">Your library</a>', html)


def test_followed_authors_are_saved_and_shown_as_written(settings, client, path):
    before = state(settings, ADA)
    answer = save(client, path, "Kaiming He\r\n\r\n  Yann LeCun \r\nHe, Kaiming\r\n")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("?done=save")
    assert state(settings, ADA).follows == ("Kaiming He", "Yann LeCun")  # one person once
    assert state(settings, BO).follows == ()
    assert state(settings, ADA).events == (*before.events, ("changed", "web"))
    assert last_detail(settings, ADA) == "SLAM, NeRF (en); follows Kaiming He, Yann LeCun"
    html = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Your preferences are saved." in html
    assert textarea(html) == "Kaiming He\nYann LeCun"

    # The same people, however written: nothing to save, nothing logged.
    again = save(client, path, "He, Kaiming\nYann LeCun")
    assert again.headers["Location"].endswith("?done=unchanged")
    assert state(settings, ADA).follows == ("Kaiming He", "Yann LeCun")
    assert len(state(settings, ADA).events) == len(before.events) + 1


def test_deleting_a_line_unfollows(settings, client, path):
    save(client, path, "Kaiming He\nYann LeCun\nFei-Fei Li")
    answer = save(client, path, "Kaiming He\nFei-Fei Li")
    assert answer.headers["Location"].endswith("?done=save")
    assert state(settings, ADA).follows == ("Kaiming He", "Fei-Fei Li")
    assert last_detail(settings, ADA) == "SLAM, NeRF (en); follows Kaiming He, Fei-Fei Li"
    assert textarea(client.get(path).get_data(as_text=True)) == "Kaiming He\nFei-Fei Li"

    save(client, path, "\n")
    assert state(settings, ADA).follows == ()
    assert last_detail(settings, ADA) == "SLAM, NeRF (en); follows no one"
    assert textarea(client.get(path).get_data(as_text=True)) == ""


def test_a_form_without_the_follows_keeps_them(settings, client, path):
    save(client, path, "Kaiming He", ranking_on=False)
    assert act(client, path, "save", topics=["slam"], language="en").status_code == 303
    now = state(settings, ADA)
    assert (now.follows, now.ranking) == (("Kaiming He",), False)
    assert last_detail(settings, ADA) == "SLAM (en)"


def test_a_surname_alone_is_refused_and_nothing_saved(settings, client, path):
    save(client, path, "Kaiming He")
    before = state(settings, ADA)
    typed = "Kaiming He\nYann LeCun\nHe"
    answer = save(client, path, typed, ranking_on=False, topics=["mllm"], language="ja")
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    error = re.search(r'<p class="field-error" id="follows-error">(.*?)</p>', html, re.S)
    assert error and "Nothing was saved" in error.group(1)
    assert "is a surname alone: add a first name or an initial" in error.group(1)
    assert 'aria-describedby="follows-hint follows-error"' in html
    # Next to its field: between the field's label and the textarea.
    assert html.index('for="follows-field"') < error.start() < html.index("<textarea")
    # What the reader typed is kept, to fix one line rather than type them all again.
    assert textarea(html) == typed and not ranking_ticked(html)
    # Nothing of the form is saved: not the follows, the switch, the topics nor the language.
    assert state(settings, ADA) == before
    assert (before.follows, before.ranking) == (("Kaiming He",), True)


@pytest.mark.parametrize(
    "hostile",
    ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</textarea><b>x</b>"],
)
def test_hostile_names_come_back_escaped(settings, client, path, hostile):
    answer = save(client, path, f"Kaiming He\n{hostile}")
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert hostile not in html
    assert "<script>alert" not in html and "<img" not in html and "<b>x" not in html
    escaped = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert escaped.replace('"', "&#34;") in textarea(html)
    assert html.count("</textarea>") == 1
    assert state(settings, ADA).follows == ()


def test_a_saved_name_is_escaped_where_shown(settings, client, path):
    assert save(client, path, "Conan O'Brien\nJosé Ñúñez").status_code == 303
    assert state(settings, ADA).follows == ("Conan O'Brien", "José Ñúñez")
    html = client.get(path).get_data(as_text=True)
    assert textarea(html) == "Conan O&#39;Brien\nJosé Ñúñez"


def test_the_ranking_switch_both_ways(settings, client, path):
    answer = save(client, path, "", ranking_on=False)
    assert answer.headers["Location"].endswith("?done=save")
    assert state(settings, ADA).ranking is False and state(settings, BO).ranking is True
    assert last_detail(settings, ADA) == "SLAM, NeRF (en); ranking off"
    assert not ranking_ticked(client.get(path).get_data(as_text=True))
    assert save(client, path, "", ranking_on=False).headers["Location"].endswith("?done=unchanged")

    answer = save(client, path, "", ranking_on=True)
    assert answer.headers["Location"].endswith("?done=save")
    assert state(settings, ADA).ranking is True
    assert last_detail(settings, ADA) == "SLAM, NeRF (en); ranking on"
    assert ranking_ticked(client.get(path).get_data(as_text=True))


def test_follows_and_ranking_need_the_csrf_token(settings, client, app, path):
    before = state(settings, ADA)
    fields = {
        "action": "save",
        "topics": ["slam", "nerf"],
        "language": "en",
        "follows": "Kaiming He",
        "ranking": ["off"],
    }
    assert client.post(path, data=fields).status_code == 400
    token = csrf_token(client.get(path).get_data(as_text=True))
    assert app.test_client().post(path, data={**fields, "csrf_token": token}).status_code == 400
    now = state(settings, ADA)
    assert (now.follows, now.ranking, now.events) == ((), True, before.events)
    # The same post with the page's own token is what saves.
    assert client.post(path, data={**fields, "csrf_token": token}).status_code == 303
    now = state(settings, ADA)
    assert (now.follows, now.ranking) == (("Kaiming He",), False)
