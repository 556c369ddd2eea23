"""A reader's model: a linear classifier over TF-IDF features, trained on what they saved, asked
for more of and seeded (positives) against what they asked for less of and a background sample
of other recent papers (negatives), the approach arxiv-sanity-lite showed works on arXiv.

A model is a weight a column and an intercept; scoring a day's papers is one sparse product.
Readers with the same signal share one model (`Signal` is the key). Training is deterministic.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.svm import LinearSVC

C = 0.1
"""The SVM's regularisation: small, so a handful of positives give broad topical weights
rather than memorising their exact words."""

BACKGROUND_SIZE = 1_000
"""Other recent papers every model is trained against (the same sample for every reader).

Training time grows with it (`bench/ranking_eval.py --readers 2000 --background N`, real
papers padded with made-up ones, one core): 4.8 ms a model at 250, 7.0 at 500, 12.7 at 1,000
with `TOL` 1e-4. It stays 1,000 because a smaller one measurably costs quality: on the 187
real papers (the most a real background can hold there), precision@5 of the keyword-cluster
readers is 0.199 with all 187 as background and 0.169 with 60, 0.168 with 120 (two seeds
agree within 0.005); what 250 against 1,000 would cost cannot be measured on so few papers."""

TOL = 1e-3
"""The SVM's stopping tolerance. 1e-3 rather than scikit-learn's 1e-4: the same precision@5 and
nDCG@10 to three decimals in every figure of `bench/ranking_eval.py` (backgrounds of 60 to 187
real papers, two seeds), and faster: 2.0 rather than 3.9 ms a model at a background of 250,
3.6 rather than 6.3 at 500, 10.2 rather than 11.9 at 1,000 (40 models each); the bench at
1,000 and 10,000 readers shows no gain beyond noise (12.6 ms against 12.7). Not 1e-2: nDCG@10 of the
category readers drops (0.683 to 0.637). Other classifiers measured the same way: logistic
regression (liblinear) 24 to 38 ms a model; SGD (hinge, 20 epochs) 6.6 ms at 1,000 but
precision@5 0.513 to 0.247 for the category readers."""


@dataclass(frozen=True)
class Signal:
    """What one reader told us: the papers they want more of, and those they want less of."""

    positive: frozenset[int]
    negative: frozenset[int] = frozenset()

    @classmethod
    def of(cls, rows: Iterable[tuple[int, bool]]) -> Signal:
        """From (paper id, positive?) pairs."""
        positive, negative = set(), set()
        for paper_id, is_positive in rows:
            (positive if is_positive else negative).add(paper_id)
        return cls(frozenset(positive), frozenset(negative))


@dataclass(frozen=True)
class LinearModel:
    weights: np.ndarray
    intercept: float

    def scores(self, papers: sparse.csr_matrix) -> np.ndarray:
        """Higher is more wanted, one score a row."""
        return np.asarray(papers @ self.weights).ravel() + self.intercept


def background_sample(paper_ids: Sequence[int], size: int = BACKGROUND_SIZE) -> list[int]:
    """A fixed sample of these papers (the same ids give the same sample), sorted."""
    ids = sorted(set(paper_ids))
    if len(ids) <= size:
        return ids
    chosen = np.random.default_rng(0).choice(len(ids), size=size, replace=False)
    return sorted(ids[i] for i in chosen)


def train(
    positive: sparse.csr_matrix, negative: sparse.csr_matrix, background: sparse.csr_matrix
) -> LinearModel:
    """A model from rows of TF-IDF features: `positive` against `negative` and `background`.

    The caller leaves the reader's own papers out of `background`. The two classes weigh
    the same in all (a few positives against a thousand others), and each paper the reader
    asked for less of weighs as much as one they want: it is as plain a word as theirs.
    """
    if positive.shape[0] == 0:
        raise ValueError("a model needs at least one positive paper")
    rows = sparse.vstack([positive, negative, background], format="csr")
    labels = np.zeros(rows.shape[0], dtype=np.int8)
    labels[: positive.shape[0]] = 1
    if labels.all():
        # Nothing to learn against: every paper is as good as its likeness to the positives.
        weights = np.asarray(positive.mean(axis=0)).ravel()
        return LinearModel(weights.astype(np.float32), 0.0)
    classifier = LinearSVC(C=C, dual=True, max_iter=10_000, tol=TOL, random_state=0)
    classifier.fit(rows, labels, sample_weight=_balanced(positive, negative, background))
    return LinearModel(classifier.coef_.ravel().astype(np.float32), float(classifier.intercept_[0]))


def _balanced(
    positive: sparse.csr_matrix, negative: sparse.csr_matrix, background: sparse.csr_matrix
) -> np.ndarray:
    wanted, unwanted, other = positive.shape[0], negative.shape[0], background.shape[0]
    total = wanted + unwanted + other
    per_positive = total / (2 * wanted)
    # What the explicit negatives do not take of the negative half goes to the background.
    per_other = max(total / 2 - unwanted * per_positive, total / 4) / max(other, 1)
    return np.concatenate(
        [np.full(wanted, per_positive), np.full(unwanted, per_positive), np.full(other, per_other)]
    )


def order(paper_ids: Sequence[int], scores: np.ndarray) -> list[int]:
    """The papers best first; equal scores keep the order given (newest first)."""
    ranked = np.argsort(-np.asarray(scores), kind="stable")
    return [paper_ids[i] for i in ranked]


@dataclass(frozen=True)
class PaperRows:
    """TF-IDF rows of some papers, found by paper id."""

    ids: Sequence[int]
    matrix: sparse.csr_matrix

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {paper_id: i for i, paper_id in enumerate(self.ids)})

    def __contains__(self, paper_id: int) -> bool:
        return paper_id in self._index

    def rows(self, paper_ids: Iterable[int]) -> sparse.csr_matrix:
        """The rows of those of these papers that have one, in the order given."""
        return self.matrix[[self._index[i] for i in paper_ids if i in self._index]]


class DayRanker:
    """One day's ranking: the background every model is trained against and the day's
    candidate papers every model scores. Readers with the same `Signal` share one model (the
    last `cache_size` signals' scores are kept), so `trained` counts distinct models."""

    def __init__(self, background: PaperRows, candidates: PaperRows, cache_size: int = 4_096):
        self.background = background
        self.candidates = candidates
        self.cache_size = cache_size
        self.trained = 0
        self._scores: OrderedDict[Signal, np.ndarray] = OrderedDict()

    def rank(self, signal: Signal, signal_rows: PaperRows, paper_ids: Sequence[int]) -> list[int]:
        """`paper_ids` (candidates, newest first) best first for a reader with this signal;
        those without features go last, newest first. `signal_rows` holds the TF-IDF rows of
        the signal's papers."""
        scores = self.scores(signal, signal_rows)
        index = self.candidates._index
        scored = [paper_id for paper_id in paper_ids if paper_id in index]
        unscored = [paper_id for paper_id in paper_ids if paper_id not in index]
        return order(scored, scores[[index[i] for i in scored]]) + unscored

    def scores(self, signal: Signal, signal_rows: PaperRows) -> np.ndarray:
        """Every candidate's score under this signal's model (trained once per signal)."""
        cached = self._scores.get(signal)
        if cached is not None:
            self._scores.move_to_end(signal)
            return cached
        own = signal.positive | signal.negative
        keep = [i for i, paper_id in enumerate(self.background.ids) if paper_id not in own]
        model = train(
            signal_rows.rows(sorted(signal.positive)),
            signal_rows.rows(sorted(signal.negative)),
            self.background.matrix[keep],
        )
        self.trained += 1
        scores = model.scores(self.candidates.matrix).astype(np.float32)
        self._scores[signal] = scores
        if len(self._scores) > self.cache_size:
            self._scores.popitem(last=False)
        return scores
