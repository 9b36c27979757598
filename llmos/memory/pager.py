"""The pager: moves pages between RAM (the context window) and disk (the store).

**Page-out.** When a process's RAM passes the high-water mark (``high`` of its budget), the
pager evicts the coldest evictable units (a call leaves with its result) until RAM is under the
low-water mark (``low``), and leaves one *summary* page where they were. Evicting in batches
matters: removing a span from the middle of RAM invalidates the CPU's KV cache for everything
after it, so the cost is paid once per batch rather than once per page. The evicted pages are
written to disk *before* they leave RAM, so a crash in the middle of a page-out loses nothing
that was acknowledged (the ``Paged`` event is recorded after the write).

The summary is written by the CPU (a few dozen tokens, greedy) unless ``summary_tokens`` is 0
or the CPU fails, in which case it is extractive (the head of each evicted page). Either way it
names the evicted page ids so the model can ``memory.recall`` one.

**Page-in.** Explicit: the ``memory`` device's syscalls (``memory.search``, ``memory.recall``,
``memory.note``). Automatic (demand paging): when a turn starts, before its message joins the
journal, the pager searches the disk with the message and appends what clears ``threshold`` as
*recalled* pages (at most ``page_in_k``, best match last, skipping what is resident), so they
sit just ahead of the question.

Invariants: the current turn's pages are never evicted; pinned pages are never evicted;
untrusted pages stay untrusted on disk and when paged back in, and a summary or note written
while untrusted text is involved is itself untrusted (taint propagates).

Neighbours: ``llmos.memory.ram`` holds the pages; ``llmos.memory.disk`` stores them;
``llmos.kernel.sched`` calls :meth:`Pager.fit` before each step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from llmos.errors import ContextOverflow, Fault
from llmos.kernel.trace import Event, Paged
from llmos.memory.page import Page
from llmos.peripherals.base import Document, Example, Limits, Peripheral, free_text, syscall

if TYPE_CHECKING:
    from llmos.cpu.base import CPU
    from llmos.kernel.proc import Process
    from llmos.memory.disk import Disk

__all__ = ["MemoryDevice", "Pager"]

_SUMMARY_PROMPT = (
    "Summarize the conversation below in one or two short sentences. Keep names, numbers "
    "and dates.\n\n{text}\n\nSummary:"
)


class Pager:
    """Keeps every process's RAM under budget, with the disk as backing store.

    Args:
        disk: where evicted pages go; None means eviction only (nothing can be paged back in).
        cpu: writes the summaries; None means extractive summaries.
        high: page out when RAM passes this share of the budget.
        low: page out down to this share of the budget.
        page_in_k: pages brought back per step by demand paging (0 turns it off).
        threshold: cosine similarity a page needs to be paged in automatically.
        summary_tokens: tokens the CPU may write for a summary (0 = extractive).
    """

    def __init__(
        self,
        disk: Disk | None = None,
        *,
        cpu: CPU | None = None,
        high: float = 0.9,
        low: float = 0.6,
        page_in_k: int = 2,
        threshold: float = 0.45,
        summary_tokens: int = 40,
    ) -> None:
        if not 0 < low < high <= 1:
            raise ValueError(f"need 0 < low < high <= 1, got low={low}, high={high}")
        self.disk = disk
        self.cpu = cpu
        self.high, self.low = high, low
        self.page_in_k, self.threshold = page_in_k, threshold
        self.summary_tokens = summary_tokens

    # -- the hooks the instruction cycle calls ------------------------------------------
    def recall(self, proc: Process, message: str, trace: list[Event]) -> None:
        """Demand paging at the start of a turn: page in what ``message`` needs.

        Runs before the message joins the journal, so what comes back sits just ahead of the
        question, as context the question is asked in. (Measured on the default model: with
        the same pages *after* the question it answered from a worked example instead.)
        """
        if self.disk is not None and self.page_in_k:
            self.demand(proc, message, trace)
            self.relieve(proc, trace, protect={p.id for p in proc.ram if p.paged_in})

    def fit(self, proc: Process, trace: list[Event]) -> None:
        """Before each step: page out until RAM is under budget, sparing the current turn."""
        turn = _current_turn(proc)
        start = proc.ram.pages.index(turn[0]) if turn else len(proc.ram)
        # the pages recalled for this turn sit just before its message: spare them too
        while start > 0 and proc.ram.pages[start - 1].paged_in:
            start -= 1
        try:
            self.relieve(proc, trace, protect={p.id for p in proc.ram.pages[start:]})
        except ContextOverflow:
            if not turn:
                raise
            # the turn itself outgrew RAM (long results): keep only its message and its
            # latest call with its result, and let the rest of the turn go to disk too
            last = turn[-1].group
            keep = {turn[0].id} | {p.id for p in turn if last is not None and p.group == last}
            self.relieve(proc, trace, protect=keep)

    def relieve(self, proc: Process, trace: list[Event], *, protect: Iterable[str] = ()) -> None:
        """Page out the coldest units if RAM is above the high-water mark."""
        protect = set(protect)
        ram = proc.ram
        ram.check()
        # the marks apply to the space the pager controls: the budget less what cannot move
        room = ram.budget - ram.fixed_tokens
        if ram.tokens <= ram.fixed_tokens + self.high * room:
            return
        target = ram.fixed_tokens + self.low * room
        while ram.tokens > target:
            # page counts are per page; the exact count is re-measured after each batch
            victims: list[Page] = []
            freed, start = 0, ram.tokens
            for unit in ram.evictable():
                if any(p.id in protect for p in unit):
                    continue
                victims.extend(unit)
                freed += sum(p.tokens for p in unit)
                # a lone summary would only be replaced by another: take the next unit too
                lone_summary = len(victims) == 1 and victims[0].kind == "summary"
                if start - freed <= target and not lone_summary:
                    break
            if not victims or (len(victims) == 1 and victims[0].kind == "summary"):
                break  # nothing left to move
            self.page_out(proc, victims, trace)
            if ram.tokens >= start:
                break  # the summary is as large as what it replaced: stop, do not spin
        if ram.tokens > ram.budget:
            raise ContextOverflow(
                f"process {proc.pid} needs {ram.tokens} tokens but its RAM holds {ram.budget}, "
                "even after paging out everything outside the current turn: raise ram_tokens, "
                "or send shorter messages (a device result is cut at its max_output_chars)"
            )

    # -- page-out -------------------------------------------------------------------------
    def page_out(self, proc: Process, victims: list[Page], trace: list[Event]) -> None:
        """Write ``victims`` to disk, then replace them in RAM by one summary page."""
        if self.disk is not None:
            # paged-in copies are on disk already; summaries go too, so every page id the
            # trace reports as paged out can be recalled
            fresh = [p for p in victims if not p.paged_in]
            if fresh:
                self.disk.write(fresh)  # durable before the pages leave RAM
        tainted = any(not p.trusted for p in victims)
        summary = Page(
            pid=proc.pid,
            kind="summary",
            role="system",
            # a summary may take a quarter of the space the pager controls (~3 chars a token)
            text=self._summarize(
                victims, chars=max(60, 3 * (proc.ram.budget - proc.ram.fixed_tokens) // 4)
            ),
            source="pager",
            trust="untrusted" if tainted else "trusted",
        )
        removed = proc.ram.replace([p.id for p in victims], summary)
        proc.stats.page_outs += len(removed)
        _record(proc, trace, "out", removed, "RAM above its high-water mark")

    def _summarize(self, pages: list[Page], *, chars: int = 400) -> str:
        # a summary of summaries keeps their gist, not their id lists (no nesting)
        ids = [p.id for p in pages if p.kind != "summary"]
        shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
        prefix = f"(paged out: {shown})" if ids else "(paged out)"
        heads = "; ".join(_head(p) for p in pages)
        extractive = f"{prefix} {heads}"
        if self.cpu is None or self.summary_tokens <= 0:
            return _cap(extractive, chars)
        text = "\n".join(f"{p.role}: {p.text}" for p in pages)[-3000:]
        try:
            out = (
                self.cpu.complete(
                    _SUMMARY_PROMPT.format(text=text), max_tokens=self.summary_tokens, slot="pager"
                )
                .text.strip()
                .split("\n")[0]
            )
        except Exception:  # the summary is a convenience; the pages are safe on disk
            out = ""
        if len(out) < 8:
            return _cap(extractive, chars)
        return _cap(f"{prefix} {out}", chars)

    # -- page-in --------------------------------------------------------------------------
    def demand(self, proc: Process, query: str, trace: list[Event]) -> list[Page]:
        """Automatic page-in: bring back what matches ``query`` above the threshold."""
        if self.disk is None or not query.strip():
            return []
        resident = {p.id for p in proc.ram}
        # paged-in copies are resident and on disk: ask for enough hits to skip past them
        recalled = sum(1 for p in proc.ram if p.paged_in)
        hits = self.disk.search(query, k=min(20, self.page_in_k + recalled), pid=proc.pid)
        chosen = [
            h.page
            for h in hits
            if h.page.id not in resident and (h.similarity or 0.0) >= self.threshold
        ][: self.page_in_k]
        # the best match goes last, nearest to where the model writes its next call
        chosen.reverse()
        return self.page_in(proc, chosen, trace, reason=f"demand paging for {query[:60]!r}")

    def page_in(
        self, proc: Process, pages: Iterable[Page], trace: list[Event], *, reason: str
    ) -> list[Page]:
        """Append copies of disk pages to the journal, marked as recalled."""
        brought: list[Page] = []
        for page in pages:
            copy = page.model_copy(
                update={"paged_in": True, "pinned": False, "group": None, "last_used": time.time()}
            )
            brought.append(proc.ram.append(copy))
        if brought:
            proc.stats.page_ins += len(brought)
            _record(proc, trace, "in", brought, reason)
        return brought


def _record(
    proc: Process, trace: list[Event], direction: Literal["in", "out"], pages: list[Page],
    reason: str,
) -> None:
    trace.append(
        Paged(
            pid=proc.pid, step=proc.stats.steps, direction=direction,
            page_ids=[p.id for p in pages], tokens=sum(p.tokens for p in pages),
            reason=reason, resident_tokens=proc.ram.tokens,
        )
    )


def _current_turn(proc: Process) -> list[Page]:
    pages = proc.ram.pages
    for i in range(len(pages) - 1, -1, -1):
        p = pages[i]
        if p.kind == "message" and p.role == "user" and not p.paged_in:
            return pages[i:]
    return []


def _head(page: Page, chars: int = 80) -> str:
    text = " ".join(page.text.split())
    if page.kind == "summary" and text.startswith("(paged out"):
        text = text.split(") ", 1)[-1]
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _cap(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


# -- the memory device: explicit page-in for the model -------------------------------------


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
    """Long-term memory: search what was paged out, recall a page by id, write a note."""

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

    def __init__(self, pager: Pager, proc_ref: Callable[[], Process]) -> None:
        if pager.disk is None:
            raise ValueError("the memory device needs a pager with a disk")
        self._pager = pager
        self._proc = proc_ref

    @syscall
    def search(self, args: SearchArgs) -> str | Document:
        """Search this process's long-term memory; returns matching pages with their ids."""
        proc = self._proc()
        assert self._pager.disk is not None
        hits = self._pager.disk.search(args.query, k=3, pid=proc.pid)
        if not hits:
            return "nothing found"
        text = "\n".join(f"[{h.page.id}] {_head(h.page, 200)}" for h in hits)
        untrusted = [h.page.source for h in hits if not h.page.trusted]
        # what came from outside stays marked as such when it comes back
        return Document(text=text, source=untrusted[0]) if untrusted else text

    @syscall
    def recall(self, args: RecallArgs) -> str | Document:
        """Bring one page back by its id; returns its text."""
        proc = self._proc()
        proc.stats.recalls += 1
        resident = proc.ram.get(args.page_id)
        if resident is not None:
            proc.ram.touch([resident.id])
            return resident.text if resident.trusted else Document(resident.text, resident.source)
        assert self._pager.disk is not None
        page = self._pager.disk.get(args.page_id)
        if page is None or page.pid != proc.pid:
            raise Fault(f"no page {args.page_id!r} in this process's memory; search for it first")
        proc.stats.page_faults += 1
        return page.text if page.trusted else Document(text=page.text, source=page.source)

    @syscall
    def note(self, args: NoteArgs) -> str:
        """Write a note straight to long-term memory; returns its page id."""
        proc = self._proc()
        tainted = any(not p.trusted for p in proc.ram)
        page = Page(
            pid=proc.pid,
            kind="note",
            role="model",
            text=args.text,
            source="model",
            trust="untrusted" if tainted else "trusted",
        )
        assert self._pager.disk is not None
        self._pager.disk.write([page])
        return f"noted as {page.id}"
