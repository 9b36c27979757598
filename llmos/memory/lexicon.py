"""The keyword index of the disk, and the rank fusion that joins it to dense search.

:class:`Lexicon` is Okapi BM25 over one scope of pages (one process's, or all), kept in this
process beside each page's text, metadata and (up to a bound) its vector, so a search needs no
second round trip to the store and a small scope can be searched exactly. Terms are lower-case
words with stop words dropped and a light suffix strip (:func:`terms`).

Fusion is reciprocal-rank fusion (RRF): each ranking gives a page ``1/(rrf_k + rank)``
(:func:`rrf`); then each page also receives ``neighbour_weight`` times the fused score of the
pages written just before and after it by the same process (:func:`fuse_keywords`), because a
conversation turn is often only findable through the turn that asked about it.

Neighbours: ``llmos.memory.chroma`` builds one lexicon per scope and fuses its ranks with the
store's dense ranks.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Lexicon", "fuse_keywords", "rrf", "terms"]

_STOP_WORDS = (
    "a an and are as at be been but by can could did do does for from had has have he her his how"
    " i if in into is it its me my no not of on or our she so than that the their them then there"
    " these they this those to was we were what when where which who whom why will with would you"
    " your"
)
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[a-z0-9]+")


def terms(text: str) -> list[str]:
    """Keyword terms: lower-case words, stop words dropped, a light suffix strip."""
    out = []
    for word in _WORD.findall(text.lower()):
        if word in _STOP:
            continue
        for suffix in ("ing", "ed", "es", "s", "ly"):
            if len(word) > len(suffix) + 2 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        out.append(word)
    return out


class Lexicon:
    """Okapi BM25 over one scope of pages (one pid, or all), with write order for neighbours."""

    K1, B = 1.5, 0.75  # the usual Okapi constants

    def __init__(self, cache_pages: int) -> None:
        self.cache_pages = cache_pages  # more vectors than this: leave search to the HNSW
        self.ids: list[str] = []
        self.meta: list[dict[str, Any]] = []
        self.texts: list[str] = []  # kept so a hit needs no second store round trip
        self.lengths: list[int] = []
        self.postings: dict[str, dict[int, int]] = {}  # term -> {doc index: term frequency}
        self.where: dict[str, int] = {}
        self._order: list[int] | None = None  # doc indexes sorted by (pid, created)
        self.rows: list[NDArray[np.float32]] | None = []  # None: too big to cache
        self._matrix: NDArray[np.float32] | None = None

    def add(self, page_id: str, text: str, meta: dict[str, Any], vector: Any) -> None:
        index = len(self.ids)
        if self.rows is not None:
            row = np.asarray(vector, dtype=np.float32)
            self.rows.append(row / max(float(np.linalg.norm(row)), 1e-12))
            self._matrix = None
            if len(self.rows) > self.cache_pages:
                self.rows = None  # too many to search exactly: the store's HNSW does it
        self.ids.append(page_id)
        self.meta.append(meta)
        self.texts.append(text)
        words = terms(text)
        self.lengths.append(len(words))
        for term, tf in Counter(words).items():
            self.postings.setdefault(term, {})[index] = tf
        self.where[page_id] = index
        self._order = None

    def nearest(self, qvec: Any, depth: int, keep: Any) -> list[tuple[int, float]]:
        """Exact cosine top ``depth`` over the cached vectors: ``(doc, similarity)``."""
        assert self.rows is not None
        if self._matrix is None:
            self._matrix = (np.stack(self.rows) if self.rows
                            else np.zeros((0, 1), dtype=np.float32))
        if not self.rows:
            return []
        q = np.asarray(qvec, dtype=np.float32)
        sims = self._matrix @ (q / max(float(np.linalg.norm(q)), 1e-12))
        if keep is not None:
            sims = np.where(keep, sims, -np.inf)
        top = np.argpartition(-sims, min(depth, len(sims) - 1))[:depth]
        top = top[np.argsort(-sims[top])]
        return [(int(d), float(sims[d])) for d in top if np.isfinite(sims[d])]

    def scores(self, query: str) -> dict[int, float]:
        n = len(self.ids)
        if not n:
            return {}
        avg = sum(self.lengths) / n or 1.0
        out: dict[int, float] = {}
        for term in set(terms(query)):
            docs = self.postings.get(term)
            if not docs:
                continue
            idf = math.log(1 + (n - len(docs) + 0.5) / (len(docs) + 0.5))
            for doc, tf in docs.items():
                norm = tf + self.K1 * (1 - self.B + self.B * self.lengths[doc] / avg)
                out[doc] = out.get(doc, 0.0) + idf * tf * (self.K1 + 1) / norm
        return out

    def neighbours(self, doc: int) -> list[int]:
        """The pages written just before and after ``doc`` by the same process."""
        if self._order is None:
            self._order = sorted(range(len(self.ids)),
                                 key=lambda i: (self.meta[i]["pid"], self.meta[i]["created"]))
            self._rank = {d: r for r, d in enumerate(self._order)}
        rank, out = self._rank[doc], []
        for r in (rank - 1, rank + 1):
            if 0 <= r < len(self._order):
                other = self._order[r]
                if self.meta[other]["pid"] == self.meta[doc]["pid"]:
                    out.append(other)
        return out


def rrf(ranked: Iterable[str], rrf_k: int) -> dict[str, float]:
    """Reciprocal-rank fusion scores of one ranking, best first: ``1/(rrf_k + rank)``."""
    return {page_id: 1.0 / (rrf_k + rank + 1) for rank, page_id in enumerate(ranked)}


def fuse_keywords(
lex: Lexicon, query: str, filters: dict[str, Any], depth: int, fused: dict[str, float], *,
rrf_k: int, neighbour_weight: float,
) -> None:
    """Add BM25 ranks to ``fused``, then spread fused scores to neighbouring pages."""

    # The lexicon's scope already is the pid: only the other fields need checking.
    others = {f: v for f, v in filters.items() if f != "pid"}

    def passes(doc: int) -> bool:
        return all(lex.meta[doc][f] == v for f, v in others.items())

    scores = lex.scores(query)
    if others:
        scores = {d: score for d, score in scores.items() if passes(d)}
    best = heapq.nlargest(depth, scores, key=scores.__getitem__)
    for rank, doc in enumerate(best):
        page_id = lex.ids[doc]
        fused[page_id] = fused.get(page_id, 0.0) + 1.0 / (rrf_k + rank + 1)
    if not neighbour_weight:
        return
    base = dict(fused)
    for page_id, score in base.items():
        at = lex.where.get(page_id)
        if at is None:
            continue
        for other in lex.neighbours(at):
            if passes(other):
                key = lex.ids[other]
                fused[key] = fused.get(key, 0.0) + neighbour_weight * score
