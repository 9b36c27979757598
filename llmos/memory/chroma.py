"""ChromaDisk: the disk on chromadb, a local directory or a Chroma server.

It implements the :class:`~llmos.memory.disk.Disk` contract: a chromadb collection on a local
``PersistentClient`` directory or on a Chroma server (``HttpClient``), every page field kept as
metadata, embeddings from the offline :class:`~llmos.memory.embed.MiniLMEmbedder` unless another
is injected.

Search is hybrid. Dense cosine search (HNSW, ``ef_search`` 256 set at creation: the default
loses recall at 100k pages) and a BM25 keyword index over the same pages each rank candidates;
the ranks are fused by reciprocal-rank fusion, and each page also receives a share of its
neighbours' fused score (``llmos.memory.lexicon``). On LoCoMo this lifts evidence recall@5 well
above either signal alone (see ``benchmarks/locomo.py``). The keyword index lives in this
process, built lazily per pid from the collection; writes and deletes through this object keep
it current, and :meth:`ChromaDisk.refresh` drops it when another kernel writes the same store.

Invariants:
    - every chromadb error leaves this module as :class:`~llmos.errors.DiskError`, its cause kept;
    - ``search`` returns at most ``k`` hits, best first, each a whole page with its provenance;
    - snapshots (hibernated processes) live in a second collection ``<name>_procs`` of the same
      store, so a kernel on another machine can resume them from a shared Chroma server.

Neighbours: ``llmos.memory.pager`` pages out to and pages in from a ``Disk``; the shell's
``llmos disk ls|search|audit|rm`` call ``list``, ``search``, ``audit`` and ``delete``.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from llmos.errors import DiskError, LLMOSError, UsageError
from llmos.memory.disk import AuditRow, Hit
from llmos.memory.lexicon import Lexicon, fuse_keywords, rrf
from llmos.memory.page import Page, PageKind, Trust

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["ChromaDisk"]


def _meta(page: Page) -> dict[str, Any]:
    meta = page.model_dump(exclude={"text", "paged_in", "group"})
    if page.group is not None:  # chromadb metadata values cannot be None
        meta["group"] = page.group
    return meta


def _page(text: str, meta: dict[str, Any]) -> Page:
    try:
        return Page(text=text, group=meta.get("group"),
                    **{k: v for k, v in meta.items() if k != "group"})
    except ValueError as exc:
        raise DiskError(f"page {meta.get('id')!r} on disk is unreadable: {exc}") from exc


@contextlib.contextmanager
def _store_errors(action: str) -> Iterator[None]:
    """The boundary: any chromadb failure becomes a DiskError naming what was being done."""
    try:
        yield
    except LLMOSError:
        raise
    except Exception as exc:
        raise DiskError(f"disk failed to {action}: {type(exc).__name__}: {exc}") from exc


class ChromaDisk:
    """A :class:`Disk` on chromadb: a local directory, or a Chroma server by URL.

    Args:
        path: directory of a ``PersistentClient`` store (created if missing).
        url: a Chroma server, e.g. ``"http://127.0.0.1:8000"`` (instead of ``path``).
        embedder: a chromadb ``EmbeddingFunction``; default :class:`MiniLMEmbedder`.
        collection: the collection's name (one per kernel disk).
        hybrid: fuse BM25 keyword ranks with dense ranks (False: dense only).
        rrf_k: the RRF constant; small values trust each list's head more.
        neighbour_weight: share of a neighbouring page's fused score a page receives.
        depth: candidates taken from each ranking before fusion.
        cache_pages: largest search scope (a pid's pages, or all) whose vectors the keyword
            index also caches for exact in-process cosine search; larger scopes use HNSW.

    Raises:
        DiskError: the store cannot be opened (corrupt, locked, unreachable).
        UsageError: both or neither of ``path`` and ``url`` were given.
    """

    def __init__(
        self, path: str | Path | None = None, *, url: str | None = None, embedder: Any = None,
        collection: str = "llmos_pages", hybrid: bool = True, rrf_k: int = 10,
        neighbour_weight: float = 0.3, depth: int = 50, cache_pages: int = 50_000,
    ) -> None:
        if (path is None) == (url is None):
            raise UsageError("ChromaDisk needs exactly one of path=... or url=...", code="disk")
        try:
            import chromadb
            from chromadb.config import Settings
        except ImportError as exc:  # pragma: no cover - chromadb is a core dependency
            raise UsageError("ChromaDisk needs chromadb: pip install chromadb",
                             code="disk") from exc
        if embedder is None:
            from llmos.memory.embed import MiniLMEmbedder

            embedder = MiniLMEmbedder()
        self.embedder = embedder
        self.hybrid, self.rrf_k, self.depth = hybrid, rrf_k, depth
        self.neighbour_weight = neighbour_weight
        self.cache_pages = cache_pages
        self._lexicons: dict[int | None, Lexicon] = {}
        # chromadb's result types are Optional everywhere; the includes asked for are present.
        self._client: Any
        self._pages: Any
        self._procs: Any
        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        self._remote = url is not None
        where = str(path) if path is not None else str(url)
        if path is not None and Path(path).exists() and not Path(path).is_dir():
            raise DiskError(f"disk path {where!r} is a file, not a store directory: pick a folder")
        with _store_errors(f"open the store at {where!r} (is it a chromadb folder, and not "
                           "locked by another program?)"):
            if path is not None:
                Path(path).mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(path), settings=settings)
            else:
                parts = urlsplit(str(url))
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise UsageError(f"disk url {url!r} must look like http://host:port",
                                     code="disk")
                self._client = chromadb.HttpClient(
                    host=parts.hostname, port=parts.port or 8000,
                    ssl=parts.scheme == "https", settings=settings)
            self._pages = self._client.get_or_create_collection(
                collection, embedding_function=embedder,
                configuration={"hnsw": {"space": "cosine", "ef_search": 256,
                                        "ef_construction": 200, "max_neighbors": 32}},
            )
            self._procs = self._client.get_or_create_collection(
                f"{collection}_procs", embedding_function=None,
                configuration={"hnsw": {"space": "l2"}},
            )
            self._batch = max(1, min(1000, self._client.get_max_batch_size()))


    @classmethod
    def connect(cls, url: str, **options: Any) -> ChromaDisk:
        """A disk on a Chroma server: ``chroma://host:port``, ``http://...`` or ``https://...``.

        Several kernels, on one host or many, may share one server: writes from each are
        durable when ``write`` returns, process ids are claimed through the store
        (:meth:`claim_pid`), and a hibernated process resumes on any of them. Embeddings are
        computed here, not by the server, so a local and a remote store rank alike. Other
        keyword arguments are those of :class:`ChromaDisk`.
        """
        parts = urlsplit(url)
        if parts.scheme == "chroma":
            url = parts._replace(scheme="http").geturl()
        return cls(url=url, **options)

    # -- pages -----------------------------------------------------------------------------

    def write(self, pages: Iterable[Page], *, vectors: NDArray[np.float32] | None = None) -> None:
        """Store pages, replacing any with the same id.

        Args:
            pages: the pages; their text is embedded unless ``vectors`` is given.
            vectors: precomputed unit vectors, one row per page (benchmarks reuse them).
        """
        batch = builtins.list(pages)
        if vectors is not None and len(vectors) != len(batch):
            raise UsageError("write() got a different number of vectors and pages", code="disk")
        for start in range(0, len(batch), self._batch):
            chunk = batch[start:start + self._batch]
            with _store_errors("embed pages"):
                embedded = (vectors[start:start + len(chunk)] if vectors is not None
                            else self.embedder([p.text for p in chunk]))
            with _store_errors("write pages"):
                self._pages.upsert(
                    ids=[p.id for p in chunk], documents=[p.text for p in chunk],
                    metadatas=[_meta(p) for p in chunk], embeddings=embedded,
                )
            for page, vector in zip(chunk, embedded, strict=True):
                self._index(page, vector)

    def get(self, page_id: str) -> Page | None:
        """The page with this id, or None."""
        with _store_errors(f"read page {page_id!r}"):
            got = self._pages.get(ids=[page_id], include=["documents", "metadatas"])
        if not got["ids"]:
            return None
        return _page(got["documents"][0], dict(got["metadatas"][0]))

    def search(
        self, query: str, *, k: int = 5, pid: int | None = None, kind: PageKind | None = None,
        source: str | None = None, trust: Trust | None = None,
    ) -> builtins.list[Hit]:
        """The ``k`` pages that best match ``query`` (hybrid dense + keyword, see module doc).

        Raises:
            UsageError: the query is empty or ``k`` is below 1.
            DiskError: the store failed.
        """
        if not query or not query.strip():
            raise UsageError("search query is empty: pass the words to look for", code="disk")
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k!r}", code="disk")
        filters = {f: v for f, v in (("pid", pid), ("kind", kind), ("source", source),
                                     ("trust", trust)) if v is not None}
        where: Any = None
        if len(filters) == 1:
            where = filters
        elif filters:
            where = {"$and": [{f: v} for f, v in filters.items()]}
        depth = max(self.depth, k)
        with _store_errors("embed the query"):
            qvec = self.embedder([query])
        # Hybrid search reads page text and metadata from the keyword index, so the dense
        # query asks the store for ids and distances only.
        lex = self._lexicon(pid) if self.hybrid else None
        pages: dict[str, tuple[str, dict[str, Any]]] = {}
        dense: builtins.list[tuple[str, float]] = []  # (page id, cosine similarity), best first
        if lex is not None and lex.rows is not None:
            # The scope's vectors are cached: exact cosine beats a filtered HNSW round trip.
            keep = None
            if set(filters) - {"pid"}:
                keep = np.array([all(m[f] == v for f, v in filters.items()) for m in lex.meta])
            dense = [(lex.ids[d], sim) for d, sim in lex.nearest(qvec[0], depth, keep)]
        else:
            include = ["distances"] if lex else ["documents", "metadatas", "distances"]
            with _store_errors("search"):
                found = self._pages.query(query_embeddings=qvec, n_results=depth if lex else k,
                                          where=where, include=include)
            for rank, (page_id, dist) in enumerate(zip(found["ids"][0], found["distances"][0],
                                                       strict=True)):
                if not lex:
                    pages[page_id] = (found["documents"][0][rank],
                                      dict(found["metadatas"][0][rank]))
                dense.append((page_id, 1.0 - float(dist)))
        similarity = dict(dense)
        fused = rrf((page_id for page_id, _ in dense), self.rrf_k)
        if lex:
            fuse_keywords(lex, query, filters, depth, fused, rrf_k=self.rrf_k,
                          neighbour_weight=self.neighbour_weight)
        ranked = sorted(fused, key=lambda i: -fused[i])[:k]
        if lex:
            for page_id in ranked:
                at = lex.where.get(page_id)
                if at is not None:
                    pages[page_id] = (lex.texts[at], lex.meta[at])
        missing = [i for i in ranked if i not in pages]
        if missing:  # written by another kernel since the index was built
            with _store_errors("read pages"):
                got = self._pages.get(ids=missing, include=["documents", "metadatas"])
            for i, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                pages[i] = (doc, dict(meta))
        return [Hit(page=_page(*pages[i]), score=fused[i], similarity=similarity.get(i))
                for i in ranked if i in pages]

    def _lexicon(self, pid: int | None) -> Lexicon:
        """The keyword index of ``pid``'s pages (or all pages), built on first use."""
        lex = self._lexicons.get(pid)
        if lex is not None and pid is None and self._remote:
            # a shared server: other kernels write too; a changed count means a stale index
            with _store_errors("count pages"):
                if int(self._pages.count()) != len(lex.ids):
                    lex = None
        if lex is None:
            lex = Lexicon(self.cache_pages)
            offset = 0
            while True:
                with _store_errors("read pages for the keyword index"):
                    got = self._pages.get(where={"pid": pid} if pid is not None else None,
                                          include=["documents", "metadatas", "embeddings"],
                                          limit=self._batch, offset=offset)
                for i, doc, meta, vec in zip(got["ids"], got["documents"], got["metadatas"],
                                             got["embeddings"], strict=True):
                    lex.add(i, doc, dict(meta), vec)
                if len(got["ids"]) < self._batch:
                    break
                offset += self._batch
            self._lexicons[pid] = lex
        return lex

    def _index(self, page: Page, vector: Any) -> None:
        for scope in (page.pid, None):
            lex = self._lexicons.get(scope)
            if lex is None:
                continue
            if page.id in lex.where:  # a rewrite: rebuild this scope on next use
                del self._lexicons[scope]
            else:
                lex.add(page.id, page.text, _meta(page), vector)

    def refresh(self) -> None:
        """Forget the in-process keyword index (call after another kernel wrote the store)."""
        self._lexicons.clear()

    def delete(self, *, pid: int | None = None, ids: Sequence[str] = ()) -> int:
        """Delete all pages of ``pid``, or the pages with the given ``ids``.

        Raises:
            UsageError: neither a pid nor ids were given (there is no delete-everything).
        """
        if pid is None and not ids:
            raise UsageError("delete() needs pid=... or ids=[...]", code="disk")
        with _store_errors("delete pages"):
            if ids:
                gone = builtins.list(self._pages.get(ids=builtins.list(ids), include=[])["ids"])
            else:
                gone = builtins.list(self._pages.get(where={"pid": pid}, include=[])["ids"])
            for start in range(0, len(gone), self._batch):
                self._pages.delete(ids=gone[start:start + self._batch])
        self.refresh()
        return len(gone)

    def list(self, pid: int | None = None, *, limit: int = 100) -> builtins.list[Page]:
        """Up to ``limit`` pages (of ``pid`` if given), oldest first."""
        with _store_errors("list pages"):
            got = self._pages.get(where={"pid": pid} if pid is not None else None,
                                  include=["documents", "metadatas"])
        pages = [_page(d, dict(m)) for d, m in zip(got["documents"], got["metadatas"],
                                                   strict=True)]
        pages.sort(key=lambda p: (p.created, p.id))
        return pages[:limit]

    def audit(self) -> builtins.list[AuditRow]:
        """Page counts grouped by (source, trust), largest first."""
        counts: Counter[tuple[str, str]] = Counter()
        offset = 0
        while True:
            with _store_errors("audit pages"):
                got = self._pages.get(include=["metadatas"], limit=self._batch, offset=offset)
            counts.update((str(m["source"]), str(m["trust"])) for m in got["metadatas"])
            if len(got["ids"]) < self._batch:
                break
            offset += self._batch
        return [AuditRow.model_validate({"source": s, "trust": t, "count": n})
                for (s, t), n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]

    def count(self) -> int:
        """How many pages are stored."""
        with _store_errors("count pages"):
            return int(self._pages.count())

    # -- process snapshots -------------------------------------------------------------------

    def save_snapshot(self, pid: int, data: dict[str, Any]) -> None:
        """Store a hibernated process's state; returns once it is durable."""
        try:
            text = json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"snapshot of pid {pid} is not JSON-serialisable: {exc}",
                             code="disk") from exc
        with _store_errors(f"save the snapshot of pid {pid}"):
            self._procs.upsert(ids=[str(pid)], documents=[text], embeddings=[[1.0]],
                               metadatas=[{"pid": pid, "saved": time.time()}])

    def load_snapshot(self, pid: int) -> dict[str, Any] | None:
        """The last snapshot of ``pid``, or None if it has none."""
        with _store_errors(f"load the snapshot of pid {pid}"):
            got = self._procs.get(ids=[str(pid)], include=["documents"])
        if not got["ids"]:
            return None
        try:
            data = json.loads(got["documents"][0])
        except ValueError as exc:
            raise DiskError(f"snapshot of pid {pid} is corrupt: {exc}") from exc
        if not isinstance(data, dict):
            raise DiskError(f"snapshot of pid {pid} is not an object")
        return data

    def snapshots(self) -> builtins.list[int]:
        """Pids that have a snapshot, ascending."""
        with _store_errors("list snapshots"):
            got = self._procs.get(include=[])
        return sorted(int(i) for i in got["ids"] if i.isdigit())  # not the pid claims

    def claim_pid(self, hint: int = 1) -> int:
        """The first process id from ``hint`` on that no kernel sharing this store holds.

        A claim is an insert-if-absent record ``pid-N`` in the snapshot collection: chromadb
        keeps the first ``add`` of an id and ignores later ones, so of two kernels racing for
        one id exactly one reads its own token back; the other moves on to the next id.
        """
        token = uuid.uuid4().hex
        pid = max(1, hint)
        while True:
            key = f"pid-{pid}"
            with _store_errors("claim a process id"):
                self._procs.add(ids=[key], documents=[token], embeddings=[[1.0]],
                                metadatas=[{"pid": pid, "claimed": time.time()}])
                got = self._procs.get(ids=[key], include=["documents"])
            if got["documents"] and got["documents"][0] == token:
                return pid
            pid += 1
