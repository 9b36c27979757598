"""Disk: the slow, unbounded, searchable store that evicted pages go to, and process snapshots.

This module is the contract. A ``Disk`` holds :class:`~llmos.memory.page.Page` objects with every
field kept as metadata, so provenance (``source``) and ``trust`` survive a round trip: an
untrusted page stays untrusted on disk and when paged back in. ``search`` returns at most ``k``
:class:`Hit` objects, best first, each a whole page with its provenance; snapshots hold
hibernated processes.

The backend is ``llmos.memory.chroma.ChromaDisk`` (a chromadb collection, hybrid dense and
keyword search); its keyword index and rank fusion are ``llmos.memory.lexicon``.

Neighbours: ``llmos.memory.pager`` pages out to and pages in from a ``Disk``; the kernel's
memory device searches it; the shell's ``llmos disk ls|search|audit|rm`` call ``list``,
``search``, ``audit`` and ``delete``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from llmos.memory.page import Page, PageKind, Trust

__all__ = ["AuditRow", "Disk", "Hit"]


class Hit(BaseModel):
    """One search result: a page and how well it matched.

    Attributes:
        page: the page, with its provenance and trust as stored.
        score: fused rank score (higher is better; comparable within one search only).
        similarity: cosine similarity to the query, or None when only keywords found it.
    """

    model_config = ConfigDict(frozen=True)

    page: Page
    score: float
    similarity: float | None = None


class AuditRow(BaseModel):
    """How many pages on disk came from one source with one trust label."""

    model_config = ConfigDict(frozen=True)

    source: str
    trust: Trust
    count: int


@runtime_checkable
class Disk(Protocol):
    """What the pager and the shell need from a store of pages."""

    def write(self, pages: Iterable[Page]) -> None:
        """Store pages (replacing any with the same id); returns once they are durable."""

    def get(self, page_id: str) -> Page | None:
        """The page with this id, or None."""

    def search(
        self, query: str, *, k: int = 5, pid: int | None = None, kind: PageKind | None = None,
        source: str | None = None, trust: Trust | None = None,
    ) -> builtins.list[Hit]:
        """The ``k`` pages that best match ``query``, filtered by the given fields."""

    def delete(self, *, pid: int | None = None, ids: Sequence[str] = ()) -> int:
        """Delete a process's pages or the given ids; returns how many went."""

    def list(self, pid: int | None = None, *, limit: int = 100) -> builtins.list[Page]:
        """Pages in write order, optionally one process's."""

    def audit(self) -> builtins.list[AuditRow]:
        """Page counts grouped by source and trust."""

    def count(self) -> int:
        """How many pages are stored."""

    def save_snapshot(self, pid: int, data: dict[str, Any]) -> None:
        """Store a hibernated process's state (JSON-serialisable), replacing the last one."""

    def load_snapshot(self, pid: int) -> dict[str, Any] | None:
        """The last snapshot of ``pid``, or None."""

    def snapshots(self) -> builtins.list[int]:
        """Pids that have a snapshot."""

    def claim_pid(self, hint: int = 1) -> int:
        """A process id, at least ``hint``, that no other kernel sharing this store holds."""

    def refresh(self) -> None:
        """Forget any in-process view of the store (another kernel may have written to it)."""
