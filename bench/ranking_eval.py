"""How well the per-reader ranking finds what a reader wants, on real arXiv abstracts.

    python bench/ranking_eval.py                  # quality: simulated readers on real papers
    python bench/ranking_eval.py --readers 10000  # and speed: models and ranking rows a second

Quality. Every paper of the real arXiv responses under `../shared/fixtures/arxiv/` (parsed
by the project's own parser, `sources.papers.paper_from_result`, one per arXiv id) is split by
publish date: the oldest 60% are what readers saw before, the newest 40% are "today". A
cluster is an arXiv category (any category a paper lists) with at least 5 papers before and 2
today. Each simulated reader saved 5 papers of one cluster from before (drawn at random, a
fixed seed); today's papers are ranked for them by the service's own code (`features`,
`Idf`, `DayRanker`: the background sample of every paper stored, the reader's saved ones left
out), and by newest first. A paper of the reader's cluster counts as relevant. Reported,
averaged over readers: precision@5 and nDCG@10 of both orders, and per cluster.

Speed (`--readers N`): N readers of a day of `--papers` candidates, each with 5 to 15
positives drawn from the corpus (so readers share no model unless their draws coincide);
reported: models trained a second and ranking rows a second (train, score, order and encode
the row as the database stores it, without the database).

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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from arxiv import _feed  # noqa: E402

from newsletter.errors import InvalidInput  # noqa: E402
from newsletter.ranking.features import Idf, compute_features, count_matrix  # noqa: E402
from newsletter.ranking.model import (  # noqa: E402
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


def quality(papers: list[FetchedPaper], per_cluster: int, seed: int) -> dict:
    data = compute_features([(p.title, p.abstract) for p in papers])
    idf = Idf.of(data)
    ids = list(range(len(papers)))
    everything = PaperRows(ids, idf.weigh(count_matrix(data)))
    cut = int(len(papers) * (1 - TODAY_SHARE))
    before, today = ids[:cut], ids[cut:][::-1]  # today newest first, as a digest holds it
    background = background_sample(ids)
    ranker = DayRanker(
        PaperRows(background, everything.rows(background)),
        PaperRows(today, everything.rows(today)),
    )
    clusters = {}
    for category in sorted({c for p in papers for c in p.categories}):
        members = {i for i in ids if category in papers[i].categories}
        old = sorted(members.intersection(before))
        if len(old) >= MIN_BEFORE and len(members.intersection(today)) >= MIN_TODAY:
            clusters[category] = (old, members)
    rng = np.random.default_rng(seed)
    rows = []
    for category, (old, members) in clusters.items():
        for _ in range(per_cluster):
            saved = frozenset(int(i) for i in rng.choice(old, size=SAVED, replace=False))
            ranked = ranker.rank(Signal(saved), everything, today)
            rows.append(
                {
                    "cluster": category,
                    "ranked": [i in members for i in ranked],
                    "newest": [i in members for i in today],
                }
            )
    return summary(rows, clusters, len(papers), len(today), ranker.trained)


def summary(rows: list[dict], clusters: dict, papers: int, today: int, trained: int) -> dict:
    def mean(values) -> float:
        values = list(values)
        return round(sum(values) / len(values), 3)

    def figures(subset: list[dict]) -> dict:
        return {
            "readers": len(subset),
            "best_p5": mean(precision_at(sorted(r["newest"], reverse=True), 5) for r in subset),
            "ranking_p5": mean(precision_at(r["ranked"], 5) for r in subset),
            "newest_p5": mean(precision_at(r["newest"], 5) for r in subset),
            "ranking_ndcg10": mean(ndcg_at(r["ranked"], 10) for r in subset),
            "newest_ndcg10": mean(ndcg_at(r["newest"], 10) for r in subset),
        }

    by_cluster = defaultdict(list)
    for row in rows:
        by_cluster[row["cluster"]].append(row)
    return {
        "papers": papers,
        "today": today,
        "models_trained": trained,
        **figures(rows),
        "clusters": {
            name: {
                "before": len(old),
                "today": sum(by_cluster[name][0]["newest"]),
                **figures(by_cluster[name]),
            }
            for name, (old, _members) in clusters.items()
        },
    }


def speed(papers: list[FetchedPaper], readers: int, day: int, seed: int) -> dict:
    """Models a second and ranking rows a second for `readers` readers of a `day`-paper digest."""
    data = compute_features([(p.title, p.abstract) for p in papers])
    idf = Idf.of(data)
    ids = list(range(len(papers)))
    everything = PaperRows(ids, idf.weigh(count_matrix(data)))
    today = ids[-day:][::-1]
    background = background_sample(ids)
    ranker = DayRanker(
        PaperRows(background, everything.rows(background)),
        PaperRows(today, everything.rows(today)),
        cache_size=0,
    )
    rng = np.random.default_rng(seed)
    signals = [
        Signal(frozenset(int(i) for i in rng.choice(ids, size=rng.integers(5, 16), replace=False)))
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
        "speed_seconds": round(seconds, 2),
        "models_per_second": round(ranker.trained / seconds, 1),
        "rows_per_second": round(written / seconds, 1),
        "ms_per_model": round(1000 * seconds / max(ranker.trained, 1), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--per-cluster", type=int, default=12, help="readers a cluster")
    parser.add_argument("--readers", type=int, default=0, help="readers for the speed figure")
    parser.add_argument("--papers", type=int, default=60, help="candidates a day (speed)")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    if not args.fixtures.is_dir():
        print(f"no real arXiv responses at {args.fixtures}", file=sys.stderr)
        return 2
    papers = real_papers(args.fixtures)
    figures = report(papers, args)
    if args.readers:
        figures.update(speed(papers, args.readers, args.papers, args.seed))
        print(
            f"speed: {figures['speed_readers']} readers, {figures['speed_papers_today']} papers "
            f"today: {figures['models_per_second']} models/s "
            f"({figures['ms_per_model']} ms each), {figures['rows_per_second']} ranking rows/s"
        )
    print(json.dumps(figures, sort_keys=True))
    return 0


def report(papers: list[FetchedPaper], args: argparse.Namespace) -> dict:
    """The quality figures, printed as a table."""
    result = quality(papers, args.per_cluster, args.seed)
    print(
        f"{result['papers']} real papers; {result['today']} today (newest 40%); "
        f"{result['readers']} simulated readers who saved {SAVED} papers of one category"
    )
    print(
        f"{'cluster':<12} {'before':>6} {'today':>5} {'readers':>7}  "
        f"{'p@5 best':>8} {'p@5 rank':>8} {'p@5 new':>7}  {'nDCG@10 rank':>12} {'nDCG@10 new':>11}"
    )
    lines = [*result["clusters"].items(), ("all", result)]
    for name, f in lines:
        print(
            f"{name:<12} {f.get('before', ''):>6} {f.get('today', ''):>5} {f['readers']:>7}  "
            f"{f['best_p5']:>8.3f} {f['ranking_p5']:>8.3f} {f['newest_p5']:>7.3f}  "
            f"{f['ranking_ndcg10']:>12.3f} {f['newest_ndcg10']:>11.3f}"
        )
    ratio = result["ranking_p5"] / result["newest_p5"] if result["newest_p5"] else math.inf
    result["p5_ratio"] = round(ratio, 2) if math.isfinite(ratio) else None
    result["target_met"] = ratio >= 2
    print(
        f"precision@5: ranking {result['ranking_p5']:.3f} vs newest first "
        f"{result['newest_p5']:.3f} ({ratio:.2f}x; target 2x: "
        f"{'met' if result['target_met'] else 'NOT met'})"
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
