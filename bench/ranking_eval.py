"""How well the per-reader ranking finds what a reader wants, on real arXiv abstracts.

    python bench/ranking_eval.py                  # quality: simulated readers on real papers
    python bench/ranking_eval.py --readers 10000  # and speed: models and ranking rows a second

Quality. Every paper of the real arXiv responses under `../shared/fixtures/arxiv/` (parsed
by the project's own parser, `sources.papers.paper_from_result`, one per arXiv id) is split by
publish date: the oldest 60% are what readers saw before, the newest 40% are "today". A
cluster, of two kinds, needs at least 5 papers before and 2 today: a *category* cluster is the
papers listing an arXiv category; a *keyword* cluster is the papers whose title or abstract
holds a distinctive word or two-word phrase, chosen by the rule of `keyword_clusters` (printed).
Each simulated reader saved 5 papers of one cluster from before (drawn at random, a fixed
seed; `--per-cluster` readers a cluster); today's papers are ranked for them by the service's
own code (`features`, `Idf`, `DayRanker`: the background sample of the stored papers, at most
`--background`, the reader's saved ones left out), and by newest first. Today's papers of the
reader's cluster are the relevant ones. Reported, averaged over readers: precision@5 and
nDCG@10 of both orders, per cluster, per kind and for all readers.

Speed (`--readers N`): N readers of a day of `--papers` candidates, each with 5 to 15
positives drawn from the corpus (so readers share no model unless their draws coincide), each
model trained against `--background` papers (the service's `BACKGROUND_SIZE` unless told; the
real papers padded with made-up ones); reported: models trained a second and ranking rows a
second (train, score, order and encode the row as the database stores it, without the
database).

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from arxiv import _feed  # noqa: E402

from newsletter.errors import InvalidInput  # noqa: E402
from newsletter.ranking.features import (  # noqa: E402
    Idf,
    compute_features,
    count_matrix,
    paper_text,
)
from newsletter.ranking.model import (  # noqa: E402
    BACKGROUND_SIZE,
    DayRanker,
    PaperRows,
    Signal,
    background_sample,
)
from newsletter.sources.papers import FetchedPaper, paper_from_result  # noqa: E402

FIXTURES = REPO.parent / "shared" / "fixtures" / "arxiv"
TODAY_SHARE = 0.4
SAVED = 5
MIN_BEFORE, MIN_TODAY = SAVED, 2
MAX_KEYWORD_SHARE = 0.1
TOPIC_WORDS = ("test", "deep", "dream")
"""The words of the fixtures' queries (`all:testing`, "deep dream"); the cs.AI/cs.LG/cs.CL
feeds were fetched by category, and the author query names no word of a title or abstract."""
GENERIC_WORDS = frozenset(
    """
    achieve achieves algorithm algorithms also analysis application applications approach
    approaches art available based best better case cases challenge challenges challenging
    code consider considered data dataset datasets demonstrate demonstrates different
    effective effectively efficient evaluate evaluated evaluation existing experiment
    experimental experiments first framework frameworks general given github high however
    important improve improved improvement improves including issue issues key large learning
    low make makes making method methods model modeling models new novel number order paper
    papers performance present presents problem problems process propose proposed proposes
    provide provides real recent recently research researchers result results second set sets
    show shown shows significant significantly specific state studies study system systems
    task tasks technique techniques time times use used uses using various way ways work works
    world
    """.split()
)
"""Research boilerplate: words any abstract may use whatever its subject."""


def real_papers(folder: Path) -> list[FetchedPaper]:
    """Every paper of every feed under `folder`, once per arXiv id (the newest version)."""
    papers: dict[str, FetchedPaper] = {}
    for path in sorted(folder.rglob("*.xml")):
        for result in _feed.parse(path.read_bytes()).results:
            try:
                fetched = paper_from_result(result)
            except InvalidInput:
                continue
            known = papers.get(fetched.arxiv_id)
            if known is None or fetched.version > known.version:
                papers[fetched.arxiv_id] = fetched
    return sorted(papers.values(), key=lambda p: (p.published, p.arxiv_id))


def precision_at(ranked: Sequence[bool], k: int) -> float:
    return sum(ranked[:k]) / k


def ndcg_at(ranked: Sequence[bool], k: int) -> float:
    gains = sum(1 / math.log2(i + 2) for i, hit in enumerate(ranked[:k]) if hit)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, sum(ranked))))
    return gains / ideal if ideal else 0.0


def quality(papers: list[FetchedPaper], per_cluster: int, seed: int, background_size: int) -> dict:
    data = compute_features([(p.title, p.abstract) for p in papers])
    idf = Idf.of(data)
    ids = list(range(len(papers)))
    everything = PaperRows(ids, idf.weigh(count_matrix(data)))
    cut = int(len(papers) * (1 - TODAY_SHARE))
    before, today = ids[:cut], ids[cut:][::-1]  # today newest first, as a digest holds it
    background = background_sample(ids, background_size)
    ranker = DayRanker(
        PaperRows(background, everything.rows(background)),
        PaperRows(today, everything.rows(today)),
    )
    clusters = {
        "category": eligible(category_clusters(papers), before, today),
        "keyword": eligible(keyword_clusters(papers, before, today), before, today),
    }
    rng = np.random.default_rng(seed)
    rows = []
    for kind, kind_clusters in clusters.items():
        for name, (old, members) in kind_clusters.items():
            for _ in range(per_cluster):
                saved = frozenset(int(i) for i in rng.choice(old, size=SAVED, replace=False))
                ranked = ranker.rank(Signal(saved), everything, today)
                rows.append(
                    {
                        "kind": kind,
                        "cluster": name,
                        "ranked": [i in members for i in ranked],
                        "newest": [i in members for i in today],
                    }
                )
    result = summary(rows, clusters, len(papers), len(today), ranker.trained)
    result["background"] = len(background)
    return result


def category_clusters(papers: list[FetchedPaper]) -> dict[str, set[int]]:
    """Every arXiv category any paper lists: the papers that list it."""
    clusters = defaultdict(set)
    for i, paper in enumerate(papers):
        for category in paper.categories:
            clusters[category].add(i)
    return dict(clusters)


def keyword_clusters(
    papers: list[FetchedPaper], before: Sequence[int], today: Sequence[int]
) -> dict[str, set[int]]:
    """Distinctive words and two-word phrases: the papers whose title or abstract holds them.

    The rule, fixed before any figure was seen: a term (a word or two-word phrase of the title
    or of the abstract, without markup, English stop words left out, words of letters only, 3
    or more) is a cluster when it is in at least `MIN_BEFORE` papers before and `MIN_TODAY`
    today; in at most `MAX_KEYWORD_SHARE` of all papers (a distinctive word, not a field's
    everyday one); not a word of a topic the fixtures were fetched with (`TOPIC_WORDS`: any
    word starting with one); and not research boilerplate (`GENERIC_WORDS`: a word in it, or
    a phrase of two). A term holding the same papers as a phrase of two words, or as an
    alphabetically earlier term of as many words, is the same cluster and is left out.
    """
    vectorizer = CountVectorizer(
        ngram_range=(1, 2),
        stop_words="english",
        strip_accents="unicode",
        token_pattern=r"(?u)\b[^\W\d_]{3,}\b",  # noqa: S106 (a regular expression)
        binary=True,
    )
    titles = [paper_text(p.title, "") for p in papers]
    abstracts = [paper_text("", p.abstract) for p in papers]
    vectorizer.fit(titles + abstracts)
    present = vectorizer.transform(titles) + vectorizer.transform(abstracts)
    present = (present > 0).tocsc()
    terms = vectorizer.get_feature_names_out()
    before_set, today_set = set(before), set(today)
    chosen: dict[str, set[int]] = {}
    seen: set[frozenset[int]] = set()
    # Phrases first, then words; alphabetically within each: the first term of a paper set wins.
    for column in sorted(range(len(terms)), key=lambda c: (-len(terms[c].split()), terms[c])):
        term = terms[column]
        members = frozenset(int(i) for i in present[:, column].indices)
        words = term.split()
        if (
            len(members & before_set) < MIN_BEFORE
            or len(members & today_set) < MIN_TODAY
            or len(members) > MAX_KEYWORD_SHARE * len(papers)
            or any(word.startswith(TOPIC_WORDS) for word in words)
            or all(word in GENERIC_WORDS for word in words)
            or members in seen
        ):
            continue
        seen.add(members)
        chosen[term] = set(members)
    return dict(sorted(chosen.items()))


def eligible(
    clusters: dict[str, set[int]], before: Sequence[int], today: Sequence[int]
) -> dict[str, tuple[list[int], set[int]]]:
    """The clusters with `MIN_BEFORE` papers before and `MIN_TODAY` today: name to (its papers
    before, all its papers)."""
    result = {}
    for name in sorted(clusters):
        members = clusters[name]
        old = sorted(members.intersection(before))
        if len(old) >= MIN_BEFORE and len(members.intersection(today)) >= MIN_TODAY:
            result[name] = (old, members)
    return result


def summary(rows: list[dict], clusters: dict, papers: int, today: int, trained: int) -> dict:
    def mean(values) -> float:
        values = list(values)
        return round(sum(values) / len(values), 3) if values else 0.0

    def figures(subset: list[dict]) -> dict:
        ranking_p5 = mean(precision_at(r["ranked"], 5) for r in subset)
        newest_p5 = mean(precision_at(r["newest"], 5) for r in subset)
        return {
            "readers": len(subset),
            "best_p5": mean(precision_at(sorted(r["newest"], reverse=True), 5) for r in subset),
            "ranking_p5": ranking_p5,
            "newest_p5": newest_p5,
            "ranking_ndcg10": mean(ndcg_at(r["ranked"], 10) for r in subset),
            "newest_ndcg10": mean(ndcg_at(r["newest"], 10) for r in subset),
            "p5_ratio": round(ranking_p5 / newest_p5, 2) if newest_p5 else None,
            "target_met": bool(subset) and ranking_p5 >= 2 * newest_p5,
        }

    by_cluster = defaultdict(list)
    for row in rows:
        by_cluster[row["kind"], row["cluster"]].append(row)
    return {
        "papers": papers,
        "today": today,
        "models_trained": trained,
        **figures(rows),
        "kinds": {
            kind: {
                **figures([r for r in rows if r["kind"] == kind]),
                "clusters": {
                    name: {
                        "before": len(old),
                        "today": sum(by_cluster[kind, name][0]["newest"]),
                        **figures(by_cluster[kind, name]),
                    }
                    for name, (old, _members) in kind_clusters.items()
                },
            }
            for kind, kind_clusters in clusters.items()
        },
    }


def speed(
    papers: list[FetchedPaper], readers: int, day: int, background_size: int, seed: int
) -> dict:
    """Models a second and ranking rows a second for `readers` readers of a `day`-paper digest,
    each model trained against `background_size` papers: the real ones, then as many made-up
    ones as needed (the title of one real paper with the abstract of another: real words and
    real lengths, so the training costs what a real paper's costs)."""
    made_up = padding(papers, background_size - len(papers), seed)
    data = compute_features([(p.title, p.abstract) for p in papers] + made_up)
    idf = Idf.of(data)
    ids = list(range(len(data)))
    everything = PaperRows(ids, idf.weigh(count_matrix(data)))
    real = ids[: len(papers)]
    today = real[-day:][::-1]
    background = background_sample(ids, background_size)
    ranker = DayRanker(
        PaperRows(background, everything.rows(background)),
        PaperRows(today, everything.rows(today)),
        cache_size=0,
    )
    rng = np.random.default_rng(seed)
    signals = [
        Signal(frozenset(int(i) for i in rng.choice(real, size=rng.integers(5, 16), replace=False)))
        for _ in range(readers)
    ]
    started = time.perf_counter()
    written = 0
    for signal in signals:
        row = json.dumps(ranker.rank(signal, everything, today))
        written += bool(row)
    seconds = time.perf_counter() - started
    return {
        "speed_readers": readers,
        "speed_papers_today": len(today),
        "speed_background": len(background),
        "speed_seconds": round(seconds, 2),
        "models_per_second": round(ranker.trained / seconds, 1),
        "rows_per_second": round(written / seconds, 1),
        "ms_per_model": round(1000 * seconds / max(ranker.trained, 1), 3),
    }


def padding(papers: list[FetchedPaper], count: int, seed: int) -> list[tuple[str, str]]:
    """`count` made-up (title, abstract) pairs: one real paper's title, another's abstract."""
    if count <= 0:
        return []
    rng = np.random.default_rng(seed)
    pairs = set()
    while len(pairs) < count:
        a, b = (int(i) for i in rng.choice(len(papers), size=2, replace=False))
        pairs.add((a, b))
    return [(papers[a].title, papers[b].abstract) for a, b in sorted(pairs)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--per-cluster", type=int, default=12, help="readers a cluster")
    parser.add_argument("--readers", type=int, default=0, help="readers for the speed figure")
    parser.add_argument("--papers", type=int, default=60, help="candidates a day (speed)")
    parser.add_argument(
        "--background",
        type=int,
        default=BACKGROUND_SIZE,
        help="background papers a model is trained against (quality: real papers only, at "
        "most all of them; speed: real papers padded with made-up ones)",
    )
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    if not args.fixtures.is_dir():
        print(f"no real arXiv responses at {args.fixtures}", file=sys.stderr)
        return 2
    papers = real_papers(args.fixtures)
    figures = report(papers, args)
    if args.readers:
        figures.update(speed(papers, args.readers, args.papers, args.background, args.seed))
        print(
            f"speed: {figures['speed_readers']} readers, {figures['speed_papers_today']} papers "
            f"today, background {figures['speed_background']}: "
            f"{figures['models_per_second']} models/s "
            f"({figures['ms_per_model']} ms each), {figures['rows_per_second']} ranking rows/s"
        )
    print(json.dumps(figures, sort_keys=True))
    return 0


def report(papers: list[FetchedPaper], args: argparse.Namespace) -> dict:
    """The quality figures, printed as a table."""
    result = quality(papers, args.per_cluster, args.seed, args.background)
    kinds = result["kinds"]
    print(
        f"{result['papers']} real papers; {result['today']} today (newest 40%); background "
        f"{result['background']} papers; {result['readers']} simulated readers who saved {SAVED} "
        f"papers of one cluster: "
        + ", ".join(
            f"{f['readers']} of {len(f['clusters'])} {kind} clusters" for kind, f in kinds.items()
        )
    )
    print(f"keywords: {', '.join(kinds['keyword']['clusters'])}")
    print(
        f"{'cluster':<24} {'before':>6} {'today':>5} {'readers':>7}  "
        f"{'p@5 best':>8} {'p@5 rank':>8} {'p@5 new':>7}  {'nDCG@10 rank':>12} {'nDCG@10 new':>11}"
    )
    lines = [
        *((name, f) for kind in kinds.values() for name, f in kind["clusters"].items()),
        *((f"all {kind}", f) for kind, f in kinds.items()),
        ("all", result),
    ]
    for name, f in lines:
        print(
            f"{name:<24} {f.get('before', ''):>6} {f.get('today', ''):>5} {f['readers']:>7}  "
            f"{f['best_p5']:>8.3f} {f['ranking_p5']:>8.3f} {f['newest_p5']:>7.3f}  "
            f"{f['ranking_ndcg10']:>12.3f} {f['newest_ndcg10']:>11.3f}"
        )
    for name, f in [
        *((f"{kind} clusters", f) for kind, f in kinds.items()),
        ("all readers", result),
    ]:
        ratio = f"{f['p5_ratio']:.2f}x" if f["p5_ratio"] is not None else "newest first finds none"
        print(
            f"precision@5, {name}: ranking {f['ranking_p5']:.3f} vs newest first "
            f"{f['newest_p5']:.3f} ({ratio}; target 2x: {'met' if f['target_met'] else 'NOT met'})"
        )
    return result


if __name__ == "__main__":
    sys.exit(main())
