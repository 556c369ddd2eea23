"""Ranking within each section: each reader's order of a digest's papers, learned from what they
saved, rated and seeded, on real abstracts (../shared/fixtures/arxiv, skipped where absent).

"Yesterday" stores three diffusion-model papers a reader liked; "today" is the 25 real cs.AI,
cs.LG and cs.CL papers of 2026-05-12, two of them about diffusion generation (2605.12480,
OmniNFT, 9th newest; 2605.12495, AlphaGRPO, the newest) among agents, optimisers and LLMs.
"""

from __future__ import annotations

import email
import re
import time
from dataclasses import replace
from datetime import date, timedelta
from email import policy

import pytest
from arxiv import _feed
from sqlalchemy import func, select, update

from newsletter import store
from newsletter.daily import send as daily_send
from newsletter.db import session_scope
from newsletter.delivery.deliverer import Deliverer
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.digest.window import open_digest
from newsletter.models import (
    Digest,
    Paper,
    PaperFeatures,
    Rating,
    ReaderPaper,
    ReaderRanking,
    Subscriber,
    utcnow,
)
from newsletter.ranking import SCHEME
from newsletter.ranking.features import compute_features, decode, paper_text
from newsletter.ranking.step import rank_digest
from newsletter.render.email import personalise, render_email
from newsletter.sources.papers import paper_from_result
from newsletter.tokens import PAPERS, DigestLinks, paper_link, read_token
from newsletter.web import create_app
from tests.arxiv_server import shared_fixture
from tests.helpers import outbox, paper, set_env, store_papers, subscribe, text_of

DIFFUSION_TODAY = {"2605.12480", "2605.12495"}

LIKED = [
    # Three diffusion-model papers the reader liked (their real titles, their abstracts' gist).
    (
        "Denoising Diffusion Probabilistic Models",
        "We present high quality image synthesis results using diffusion probabilistic models, "
        "a class of latent variable models inspired by nonequilibrium thermodynamics. Our best "
        "results are obtained by training on a weighted variational bound designed according "
        "to a novel connection between diffusion probabilistic models and denoising score "
        "matching with Langevin dynamics.",
    ),
    (
        "High-Resolution Image Synthesis with Latent Diffusion Models",
        "By decomposing the image formation process into a sequential application of denoising "
        "autoencoders, diffusion models achieve state-of-the-art synthesis results on image "
        "data. We apply them in the latent space of powerful pretrained autoencoders, which "
        "makes high-resolution image and video generation with diffusion models efficient.",
    ),
    (
        "Score-Based Generative Modeling through Stochastic Differential Equations",
        "Creating noise from data is easy; creating data from noise is generative modeling. We "
        "present a stochastic differential equation that transforms a complex data distribution "
        "to a known prior distribution by slowly injecting noise, and a reverse-time SDE that "
        "removes the noise for generation: score-based diffusion models for image and audio "
        "generation.",
    ),
]

DAY1, DAY2 = date(2026, 5, 11), date(2026, 5, 12)


def real_day() -> list:
    path = shared_fixture("current/cs-ai-lg-cl_2026-05-12_25.xml")
    return [paper_from_result(result) for result in _feed.parse(path.read_bytes()).results]


@pytest.fixture
def day(settings, cli):
    """Yesterday's digest held the liked papers; today's holds the 25 real papers. Returns
    today's digest id and its papers' ids newest first (by arXiv id)."""
    cli("topics", "add", "AI", "--keyword", "learning")
    liked = [
        replace(paper(900 + i, title=title, days_old=30), abstract=abstract)
        for i, (title, abstract) in enumerate(LIKED)
    ]
    store_papers(settings, "AI", *liked)
    with session_scope(settings) as session:
        open_digest(session, DAY1, utcnow())
    store_papers(settings, "AI", *real_day())
    with session_scope(settings) as session:
        digest = open_digest(session, DAY2, utcnow() + timedelta(seconds=1))
        topic = store.get_topic(session, "AI")
        papers = store.papers_linked_between(
            session, topic.id, digest.window_start, digest.window_end
        )
        return digest.id, [p.arxiv_id for p in papers]


def reader(settings, cli, email: str, *, liked=(), less=(), saved=(), seeds=()) -> int:
    """A subscriber of AI with this signal (arXiv ids of stored papers); their id."""
    subscribe(cli, email, "AI")
    with session_scope(settings) as session:
        subscriber_id = store.get_subscriber(session, email).id
        named = [*liked, *less, *saved, *seeds]
        ids = {p.arxiv_id: p.id for p in store.papers_by_arxiv_ids(session, named)}
        now = utcnow()
        for arxiv_id in liked:
            session.add(ReaderPaper(subscriber_id=subscriber_id, paper_id=ids[arxiv_id],
                                    rating=int(Rating.more), rated_at=now))  # fmt: skip
        for arxiv_id in less:
            session.add(ReaderPaper(subscriber_id=subscriber_id, paper_id=ids[arxiv_id],
                                    rating=int(Rating.less), rated_at=now))  # fmt: skip
        for arxiv_id in saved:
            session.add(ReaderPaper(subscriber_id=subscriber_id, paper_id=ids[arxiv_id],
                                    saved_at=now))  # fmt: skip
        for arxiv_id in seeds:
            session.add(ReaderPaper(subscriber_id=subscriber_id, paper_id=ids[arxiv_id],
                                    seed=True))  # fmt: skip
    return subscriber_id


LIKED_IDS = ("2611.00900", "2611.00901", "2611.00902")


def ranking(settings, digest_id: int, subscriber_id: int) -> list[str] | None:
    """The reader's stored order of the digest, as arXiv ids; None without one."""
    with session_scope(settings) as session:
        found = store.rankings_of(session, digest_id, [subscriber_id])
        arxiv_ids = dict(session.execute(select(Paper.id, Paper.arxiv_id)).all())
    if subscriber_id not in found:
        return None
    return [arxiv_ids[paper_id] for paper_id in found[subscriber_id]]


# ---------------------------------------------------------------- order


def test_a_reader_who_liked_diffusion_papers_sees_them_first(settings, cli, day):
    digest_id, newest_first = day
    assert newest_first.index("2605.12480") == 8  # newest first, OmniNFT is 9th
    ada = reader(settings, cli, "ada@example.org", liked=LIKED_IDS[:2], seeds=LIKED_IDS[2:])
    bo = reader(settings, cli, "bo@example.org")  # no signal: newest first

    report = rank_digest(settings, digest_id)

    order = ranking(settings, digest_id, ada)
    assert DIFFUSION_TODAY <= set(order[:3]), order[:5]  # OmniNFT is 9th newest
    # What an email can show is kept: her topic's first 10 (NEWSLETTER_DIGEST_MAX_PER_TOPIC)
    assert len(order) == len(set(order)) == 10 and set(order) < set(newest_first)
    assert ranking(settings, digest_id, bo) is None
    assert (report.readers_ranked, report.too_little_signal, report.models_trained) == (1, 1, 1)


def test_saved_papers_are_positives_too(settings, cli, day):
    digest_id, _ = day
    ada = reader(settings, cli, "ada@example.org", saved=LIKED_IDS)
    rank_digest(settings, digest_id)
    assert DIFFUSION_TODAY <= set(ranking(settings, digest_id, ada)[:3])


def test_a_disliked_paper_goes_down(settings, cli, day):
    digest_id, _ = day
    ada = reader(settings, cli, "ada@example.org", liked=LIKED_IDS)
    bo = reader(settings, cli, "bo@example.org", liked=LIKED_IDS, less=["2605.12480"])
    report = rank_digest(settings, digest_id)
    assert report.models_trained == 2  # their signals differ
    liked_it, disliked_it = ranking(settings, digest_id, ada), ranking(settings, digest_id, bo)
    assert liked_it.index("2605.12480") < 2
    # Further down for bo, or past what his email can show (his row keeps the first 10).
    where = disliked_it.index("2605.12480") if "2605.12480" in disliked_it else len(disliked_it)
    assert where > liked_it.index("2605.12480") + 2


def test_readers_with_the_same_signal_share_one_model(settings, cli, day):
    digest_id, _ = day
    readers = [reader(settings, cli, f"r{i}@example.org", liked=LIKED_IDS) for i in range(3)]
    report = rank_digest(settings, digest_id)
    assert (report.readers_ranked, report.models_trained) == (3, 1)
    with session_scope(settings) as session:
        orders = store.rankings_of(session, digest_id, readers)
    assert len(orders) == 3 and len({tuple(o) for o in orders.values()}) == 1


# ---------------------------------------------------------------- who is ranked


def test_too_little_signal_gets_no_ranking(settings, cli, day, monkeypatch):
    digest_id, _ = day
    # Two positives and a "less like this" on a third: below NEWSLETTER_RANKING_MIN_SIGNAL (3).
    ada = reader(settings, cli, "ada@example.org", liked=LIKED_IDS[:2], less=LIKED_IDS[2:])
    report = rank_digest(settings, digest_id)
    assert ranking(settings, digest_id, ada) is None
    assert (report.readers_ranked, report.too_little_signal) == (0, 1)

    assert rank_digest(set_env(monkeypatch, ranking_min_signal="2"), digest_id).readers_ranked == 1


def test_the_readers_own_switch_turns_ranking_off(settings, cli, day):
    digest_id, _ = day
    ada = reader(settings, cli, "ada@example.org", liked=LIKED_IDS)
    with session_scope(settings) as session:
        session.execute(update(Subscriber).where(Subscriber.id == ada).values(ranking=False))
    report = rank_digest(settings, digest_id)
    assert ranking(settings, digest_id, ada) is None
    assert report.readers_ranked == 0


def test_a_reader_who_turns_ranking_off_after_the_step_gets_newest_first(settings, cli, day):
    digest_id, newest_first = day
    ada = reader(settings, cli, "ada@example.org", liked=LIKED_IDS[:2], seeds=LIKED_IDS[2:])
    rank_digest(settings, digest_id)
    assert ranking(settings, digest_id, ada) is not None
    with session_scope(settings) as session:  # as the preferences page does
        session.execute(update(Subscriber).where(Subscriber.id == ada).values(ranking=False))

    cli("send", "--date", DAY2.isoformat())

    assert arxiv_ids_in(outbox(settings)["ada@example.org"]) == newest_first[:10]


def test_the_setting_turns_ranking_off_for_the_list(settings, cli, day, monkeypatch):
    digest_id, _ = day
    ada = reader(settings, cli, "ada@example.org", liked=LIKED_IDS)
    report = rank_digest(set_env(monkeypatch, ranking="false"), digest_id)
    assert report.off and report.readers_ranked == 0 and report.features_computed == 0
    assert ranking(settings, digest_id, ada) is None


def test_an_unsubscribed_reader_is_not_ranked(settings, cli, day):
    digest_id, _ = day
    ada = reader(settings, cli, "ada@example.org", liked=LIKED_IDS)
    cli("subscribers", "remove", "ada@example.org")
    assert rank_digest(settings, digest_id).readers_ranked == 0
    assert ranking(settings, digest_id, ada) is None


# ---------------------------------------------------------------- once per paper, once per day


def test_features_are_made_once_per_paper(settings, cli, day):
    digest_id, newest_first = day
    reader(settings, cli, "ada@example.org", liked=LIKED_IDS)
    assert rank_digest(settings, digest_id).features_computed == len(newest_first) + 3
    with session_scope(settings) as session:
        stored = dict(session.execute(select(PaperFeatures.paper_id, PaperFeatures.scheme)).all())
        omni = store.papers_by_arxiv_ids(session, ["2605.12480"])[0]
        data = session.get(PaperFeatures, omni.id).data
    assert set(stored.values()) == {SCHEME} and len(stored) == len(newest_first) + 3
    assert data == compute_features([(omni.title, omni.abstract)])[0]
    assert rank_digest(settings, digest_id, rerank=True).features_computed == 0

    # A new version with a new abstract: its features are made again, and only its.
    fetched = next(p for p in real_day() if p.arxiv_id == "2605.12480")
    store_papers(settings, "AI", replace(fetched, version=2, abstract="A new abstract."))
    assert rank_digest(settings, digest_id, rerank=True).features_computed == 1
    with session_scope(settings) as session:
        indices, counts = decode(session.get(PaperFeatures, omni.id).data)
    assert len(indices) == len(compute_features([(fetched.title, "A new abstract.")])[0]) // 8


def test_a_rerun_ranks_nobody_twice(settings, cli, day):
    digest_id, _ = day
    ada = reader(settings, cli, "ada@example.org", liked=LIKED_IDS)
    first = rank_digest(settings, digest_id)
    order = ranking(settings, digest_id, ada)
    with session_scope(settings) as session:
        created = session.get(ReaderRanking, (digest_id, ada)).created_at

    again = rank_digest(settings, digest_id)
    assert (first.readers_ranked, first.models_trained) == (1, 1)
    assert (again.readers_ranked, again.already_ranked, again.models_trained) == (0, 1, 0)
    with session_scope(settings) as session:
        assert session.get(ReaderRanking, (digest_id, ada)).created_at == created

    forced = rank_digest(settings, digest_id, rerank=True)
    assert (forced.readers_ranked, forced.models_trained) == (1, 1)
    assert ranking(settings, digest_id, ada) == order  # the same model: deterministic
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).select_from(ReaderRanking)) == 1


def test_rankings_of_digests_two_weeks_older_are_dropped(settings, cli, day):
    """A ranking row is one reader's order of one digest: kept for resends and web versions
    of recent digests, dropped after two weeks rather than piling up by the list's size."""
    digest_id, _ = day
    ada = reader(settings, cli, "ada@example.org", liked=LIKED_IDS)
    rank_digest(settings, digest_id)
    with session_scope(settings) as session:  # the fixture's window ends a second from now
        session.get(Digest, digest_id).window_end = utcnow() - timedelta(seconds=1)
    later = []
    for days in (14, 15):
        store_papers(settings, "AI", paper(700 + days, "A diffusion model of denoising"))
        with session_scope(settings) as session:
            digest = open_digest(session, DAY2 + timedelta(days=days), utcnow())
            later.append(digest.id)

    kept = rank_digest(settings, later[0])  # DAY2 is 14 days before: kept
    assert kept.rankings_dropped == 0 and ranking(settings, digest_id, ada) is not None
    dropped = rank_digest(settings, later[1])
    assert dropped.rankings_dropped == 1 and ranking(settings, digest_id, ada) is None
    assert ranking(settings, later[0], ada) is not None


def test_rankings_are_read_in_chunks(settings, cli, day, monkeypatch):
    digest_id, _ = day
    readers = [reader(settings, cli, f"r{i}@example.org", liked=LIKED_IDS) for i in range(3)]
    monkeypatch.setattr("newsletter.store.ranking.IN_LIST_LIMIT", 2)
    monkeypatch.setattr("newsletter.ranking.step.READER_CHUNK", 2)
    assert rank_digest(settings, digest_id).readers_ranked == 3
    with session_scope(settings) as session:
        assert sorted(store.rankings_of(session, digest_id, [*readers, 10_000])) == readers


# ---------------------------------------------------------------- features


def test_latex_markup_is_not_a_feature():
    text = paper_text(
        r"PanGu-$\pi$ and \emph{diffusion}", r"See $\mathcal{L}_{\rm KL}$ at https://github.com/x/y"
    )
    assert (
        "diffusion" in text
        and "mathcal" not in text
        and "github" not in text
        and "emph" not in text
    )


# ---------------------------------------------------------------- the email


def arxiv_ids_in(message) -> list[str]:
    """The papers of a digest's text part, in the order they are listed."""
    return re.findall(r"Abstract: https://arxiv\.org/abs/(\S+)", text_of(message))


def test_the_email_lists_a_ranked_readers_papers_in_their_order(settings, cli, day):
    """Ranking changes which papers a reader is shown and in what order, not what the others
    get: the same segment (topics, language) assembles each email from the same pieces."""
    digest_id, newest_first = day
    ada_id = reader(settings, cli, "ada@example.org", liked=LIKED_IDS[:2], seeds=LIKED_IDS[2:])
    reader(settings, cli, "bo@example.org")
    settings = set_env(pytest.MonkeyPatch(), digest_max_per_topic="5")

    cli("send", "--date", DAY2.isoformat())
    sent = outbox(settings)

    ada, bo = arxiv_ids_in(sent["ada@example.org"]), arxiv_ids_in(sent["bo@example.org"])
    assert bo == newest_first[:5]  # no signal: the five newest, newest first
    assert ada == ranking(settings, digest_id, ada_id)[:5]  # the five she most likely wants
    assert ada[0] == "2605.12480"  # OmniNFT, 9th newest, diffusion: first for her
    assert "2605.12480" not in bo
    # Both say the same about the rest: 20 more papers, on the web.
    for message in sent.values():
        assert "20 more papers in AI" in text_of(message)
    html = sent["ada@example.org"].get_body(("html",)).get_content()
    assert html.index("arXiv:2605.12480") < html.index(f"arXiv:{ada[1]}")
    # The inbox preview names no "first" paper: her first is not the newest.
    preview = re.search(r'<div class="preheader"[^>]*>([^<&]*)', html).group(1)
    assert preview.startswith("25 new papers today: AI (25).") and "First:" not in preview


def test_a_ranked_readers_web_version_is_in_their_order(settings, cli, day):
    """ "View in browser" shows every paper, those their email can show in their order first."""
    digest_id, newest_first = day
    ada_id = reader(settings, cli, "ada@example.org", liked=LIKED_IDS[:2], seeds=LIKED_IDS[2:])
    cli("send", "--date", DAY2.isoformat())
    text = text_of(outbox(settings)["ada@example.org"])
    web_version = re.search(r"View in browser: (\S+)", text).group(1)

    with create_app(settings).test_client() as client:
        page = client.get(web_version.removeprefix(settings.base_url)).get_data(as_text=True)

    order = ranking(settings, digest_id, ada_id)
    shown = list(dict.fromkeys(re.findall(r"arxiv\.org/abs/([\d.]+)", page)))
    assert len(shown) == 25  # every paper: first those of her order, then the others newest first
    assert shown[:10] == order
    assert shown[10:] == [arxiv_id for arxiv_id in newest_first if arxiv_id not in order]


def test_a_ranked_message_by_substitution_equals_one_rendered_whole_in_that_order(
    settings, cli, day, monkeypatch
):
    """The pieces (frame, cards encoded apart, the reader's link in each) join into exactly the
    body a whole render of the reader's order gives, with their own link on every card."""
    digest_id, _ = day
    reader(settings, cli, "ada@example.org", liked=LIKED_IDS[:2], seeds=LIKED_IDS[2:])
    reader(settings, cli, "bo@example.org")
    monkeypatch.setattr(time, "time", lambda: 1_790_000_000.5)  # the tokens' timestamp
    settings = set_env(monkeypatch, digest_max_per_topic="6", format="html")
    rank_digest(settings, digest_id)
    daily_send.prepare(settings, DAY2)
    deliverer = Deliverer(settings, digest_id, transport=None)
    with session_scope(settings) as session:
        ids = [row.id for row in store.deliveries_of(session, digest_id)]
        rows = store.claimed_rows(session, ids)
        deliverer.messages.prepare(session, rows)
    builder = deliverer.messages
    assert builder.edition.ranked
    secret, base = settings.secret(), settings.base_url
    for row in rows:
        ours = email.message_from_bytes(builder.message(row).data, policy=policy.strict)
        segment = builder._segment((row.topic_ids, row.language, ()))
        orders = segment.orders(builder._rankings.get(row.subscriber_id))
        assert (orders is None) == (row.email == "bo@example.org")  # bo: newest first
        content = builder.edition.content(row.topic_ids, row.language)
        body = render_email(content, sender_name=settings.sender_name, ranked=True)
        unsubscribe, preferences, web_version, papers = DigestLinks(base, secret, DAY2).links(
            row.public_id
        )
        whole = personalise(
            body,
            unsubscribe,
            preferences,
            web_version,
            paper_url=lambda arxiv_id, papers=papers: paper_link(papers, arxiv_id),
            orders=orders,
        )
        text = ours.get_body(("plain",)).get_content().replace("\r\n", "\n")
        html = ours.get_body(("html",)).get_content().replace("\r\n", "\n")
        # (compose ends the last line of a part, as every message's parts end)
        assert (text, html.removesuffix("\n")) == (whole.text, whole.html), row.email
        listed = re.findall(r"Abstract: https://arxiv\.org/abs/(\S+)", text)
        for token, arxiv_id in set(re.findall(r"/papers/([\w.-]+)/([\w./-]+)/save", text)):
            assert read_token(secret, PAPERS, token) == row.public_id and arxiv_id in listed


def test_translations_of_a_ranked_day_cover_every_paper_those_shown_newest_first_first(
    settings, cli, day, monkeypatch
):
    """With readers ranked, any paper of a section may be shown: the translation step is
    asked for all of them, but first for those newest first shows (a budget that runs out
    must not leave the readers who are not ranked untranslated)."""
    digest_id, newest_first = day
    reader(settings, cli, "ada@example.org", liked=LIKED_IDS)
    settings = set_env(monkeypatch, digest_max_per_topic="4", translator="libretranslate")
    with session_scope(settings) as session:
        digest = store.digest_by_id(session, digest_id)
        edition = Edition.read(session, digest, EditionOptions.from_settings(settings))
        topic_ids = list(edition.topic_ids)
        assert edition.shown(topic_ids) == newest_first[:4]  # nobody ranked yet
        rank_digest(settings, digest_id)
        edition = Edition.read(session, digest, EditionOptions.from_settings(settings))
        edition.has_rankings(session)
    shown = edition.shown(topic_ids)
    assert shown[:4] == newest_first[:4] and sorted(shown) == sorted(newest_first)
