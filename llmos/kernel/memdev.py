"""The memory device: the kernel's built-in device for explicit page-in.

Beside ``answer`` (``llmos.kernel.syscall``), this is the kernel's other built-in syscall
family. The kernel makes one per process when it has a disk (it is never a mounted peripheral):
``memory.search`` finds what was paged out, ``memory.recall`` brings a page back by id,
``memory.note`` writes straight to long-term memory.

Invariants: a process sees only its own pages (every disk query is filtered by its pid); what
came from outside comes back as a :class:`~llmos.peripherals.base.Document`, so it stays
untrusted; a note written after untrusted text was read in this turn (``RAM.tainted``) is
itself untrusted (taint propagates). A note is the model's writing, never the user's: it
grounds no sensitive target and widens no egress allowlist, trusted or not. Search and recall
hand back pages already in memory with the trust they were stored with, so they are declared
*pure*: as trusted as the query that chose them.

Neighbours: ``llmos.memory.disk`` stores the pages; ``llmos.memory.ram`` is the process's
context window (a recall of a resident page is served from it); ``llmos.kernel.boot`` mounts
one per process.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from llmos.errors import Fault
from llmos.memory.disk import Disk
from llmos.memory.page import Page
from llmos.memory.pager import PageStats
from llmos.memory.ram import RAM
from llmos.peripherals.base import Document, Example, Limits, Peripheral, free_text, syscall

__all__ = ["MemoryDevice"]


class SearchArgs(BaseModel):
    """Arguments of ``memory.search``."""

    query: str = Field(min_length=1, max_length=300, description="What to look for.")


class RecallArgs(BaseModel):
    """Arguments of ``memory.recall``."""

    page_id: str = Field(pattern=r"^[0-9a-f]{12}$", description="A page id, e.g. '3f2a9c1b7d40'.")


class NoteArgs(BaseModel):
    """Arguments of ``memory.note``."""

    text: str = free_text(min_length=1, max_length=1000, description="What to remember.")


class MemoryDevice(Peripheral):
    """Long-term memory: search what was paged out, recall a page by id, write a note.

    Args:
        disk: the kernel's disk.
        ram: the process's context window (its pid scopes every query).
        stats: the process's paging counters (recalls and page faults are counted here).
    """

    name = "memory"
    limits = Limits(timeout_s=30.0, max_output_chars=2000)
    examples = (
        Example(
            question="Which train does Maria take to work?",
            calls=(
                (
                    "memory.search",
                    {"query": "Maria train to work"},
                    "[4be0c2f19a7d] Maria said she takes the 7:40 train to work.",
                ),
            ),
            answer="Maria takes the 7:40 train to work.",
        ),
    )

    def __init__(self, disk: Disk, ram: RAM, stats: PageStats) -> None:
        self._disk = disk
        self._ram = ram
        self._stats = stats

    @syscall(pure=True)
    def search(self, args: SearchArgs) -> str | Document:
        """Search this process's long-term memory; returns matching pages with their ids."""
        hits = self._disk.search(args.query, k=3, pid=self._ram.pid)
        if not hits:
            return "nothing found"
        text = "\n".join(f"[{h.page.id}] {h.page.head(200)}" for h in hits)
        untrusted = [h.page.source for h in hits if not h.page.trusted]
        # what came from outside stays marked as such when it comes back
        return Document(text=text, source=untrusted[0]) if untrusted else text

    @syscall(pure=True)
    def recall(self, args: RecallArgs) -> str | Document:
        """Bring one page back by its id; returns its text."""
        self._stats.recalls += 1
        resident = self._ram.get(args.page_id)
        if resident is not None:
            self._ram.touch([resident.id])
            return resident.text if resident.trusted else Document(resident.text, resident.source)
        page = self._disk.get(args.page_id)
        if page is None or page.pid != self._ram.pid:
            raise Fault(f"no page {args.page_id!r} in this process's memory; search for it first")
        self._stats.page_faults += 1
        return page.text if page.trusted else Document(text=page.text, source=page.source)

    @syscall(pure=True)  # its reply is the kernel's: a page id
    def note(self, args: NoteArgs) -> str:
        """Write a note straight to long-term memory; returns its page id."""
        tainted = self._ram.tainted or any(not p.trusted for p in self._ram)
        page = Page(
            pid=self._ram.pid,
            kind="note",
            role="model",
            text=args.text,
            source="model",
            trust="untrusted" if tainted else "trusted",
        )
        self._disk.write([page])
        return f"noted as {page.id}"
