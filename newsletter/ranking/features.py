"""A paper's title and abstract as ranking features: term counts made once per paper, weighted
by TF-IDF when a model is trained or scores.

What is stored (`PaperFeatures.data`) is only the paper's own term counts, hashed into
`N_FEATURES` columns (words and two-word phrases, English stop words left out): it never goes
stale, because nothing in it depends on the other papers. The inverse document frequencies do,
so they are counted from the stored corpus each day (`Idf.of`) and applied when the matrices
are built (`Idf.weigh`).

LaTeX: control sequences (`\\alpha`, `\\mathcal`, `\\emph`) are dropped and their arguments
kept, so `\\emph{diffusion}` is the word diffusion and markup does not make two papers look
alike; math keeps its words (`$\\text{BLEU}$` is BLEU) and loses its one-letter symbols (the
tokenizer keeps words of two characters or more). URLs are dropped: `github` says nothing of
a paper's subject.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer

N_FEATURES = 2**18

_INDEX = np.dtype("<i4")
_VALUE = np.dtype("<f4")

_URL = re.compile(r"https?://\S+|www\.\S+")
_CONTROL_SEQUENCE = re.compile(r"\\[A-Za-z]+\*?|\\.")
_MARKUP = re.compile(r"[${}^_~]")

_VECTORIZER = HashingVectorizer(
    n_features=N_FEATURES,
    ngram_range=(1, 2),
    stop_words="english",
    strip_accents="unicode",
    alternate_sign=False,
    norm=None,
    dtype=np.float32,
)


def paper_text(title: str, abstract: str) -> str:
    """What the features are made of: the title and abstract without markup."""
    text = f"{title}\n{abstract}"
    text = _URL.sub(" ", text)
    text = _CONTROL_SEQUENCE.sub(" ", text)
    return _MARKUP.sub(" ", text)


def compute_features(texts: Sequence[tuple[str, str]]) -> list[bytes]:
    """The stored form of each (title, abstract): its term counts, encoded by `encode`."""
    if not texts:
        return []
    counts = _VECTORIZER.transform([paper_text(title, abstract) for title, abstract in texts])
    counts = counts.tocsr()
    counts.sort_indices()
    return [encode(counts.indices[a:b], counts.data[a:b]) for a, b in _row_bounds(counts)]


def encode(indices: np.ndarray, values: np.ndarray) -> bytes:
    """Columns as little-endian int32, then their counts as float32 (8 bytes a term)."""
    return indices.astype(_INDEX).tobytes() + values.astype(_VALUE).tobytes()


def decode(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(columns, counts) of stored features."""
    terms = len(data) // 8
    indices = np.frombuffer(data, dtype=_INDEX, count=terms)
    values = np.frombuffer(data, dtype=_VALUE, count=terms, offset=terms * 4)
    return indices, values


def count_matrix(rows: Iterable[bytes]) -> sparse.csr_matrix:
    """Stored features as a sparse matrix of term counts, a row per paper in the given order."""
    decoded = [decode(data) for data in rows]
    indptr = np.zeros(len(decoded) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(indices) for indices, _ in decoded])
    indices = np.concatenate([i for i, _ in decoded]) if decoded else np.zeros(0, _INDEX)
    values = np.concatenate([v for _, v in decoded]) if decoded else np.zeros(0, _VALUE)
    return sparse.csr_matrix((values, indices, indptr), shape=(len(decoded), N_FEATURES))


@dataclass(frozen=True)
class Idf:
    """Inverse document frequencies of a corpus (scikit-learn's smoothed formula)."""

    weights: np.ndarray
    """One float32 a column: ln((1 + n) / (1 + df)) + 1."""
    documents: int

    @classmethod
    def of(cls, rows: Iterable[bytes]) -> Idf:
        """Counted over stored features, streamed: memory is one array of `N_FEATURES`."""
        frequencies = np.zeros(N_FEATURES, dtype=np.int64)
        documents = 0
        for data in rows:
            indices, _ = decode(data)
            frequencies[indices] += 1  # a paper's columns are distinct
            documents += 1
        weights = np.log((1.0 + documents) / (1.0 + frequencies)) + 1.0
        return cls(weights.astype(np.float32), documents)

    def weigh(self, counts: sparse.csr_matrix) -> sparse.csr_matrix:
        """TF-IDF rows of unit length: sublinear term frequency (1 + ln count) times IDF."""
        weighted = counts.astype(np.float32, copy=True)
        weighted.data = (1.0 + np.log(weighted.data)) * self.weights[weighted.indices]
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.csr_matrix(sparse.diags(1.0 / norms) @ weighted, dtype=np.float32)


def _row_bounds(matrix: sparse.csr_matrix) -> Iterable[tuple[int, int]]:
    return zip(matrix.indptr[:-1], matrix.indptr[1:], strict=True)
