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

**Page-in.** Explicit: the kernel's ``memory`` device (``llmos.kernel.memdev``:
``memory.search``, ``memory.recall``, ``memory.note``). Automatic (demand paging): when a turn
starts, before its message joins the journal, the pager searches the disk with the message and
appends what clears ``threshold`` as *recalled* pages (at most ``page_in_k``, best match last,
skipping what is resident), so they sit just ahead of the question.

Invariants: the current turn's pages are never evicted; pinned pages are never evicted;
untrusted pages stay untrusted on disk and when paged back in, and a summary or note written
while untrusted text is involved is itself untrusted (taint propagates).

The pager works on one process's :class:`~llmos.memory.ram.RAM` (which knows its pid) and its
:class:`PageStats` counters; it knows nothing of processes or the kernel.

Neighbours: ``llmos.memory.ram`` holds the pages; ``llmos.memory.disk`` stores them;
the instruction cycle (``llmos.kernel.cycle``) calls :meth:`Pager.fit` before each step and
``Kernel.feed`` calls :meth:`Pager.relieve` after loading a page.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Literal

from llmos.errors import ContextOverflow, UsageError
from llmos.memory.page import Page
from llmos.memory.ram import RAM
from llmos.params import Params
from llmos.trace import Event, Paged

if TYPE_CHECKING:
    from llmos.cpu.base import CPU
    from llmos.memory.disk import Disk

__all__ = ["PageStats", "Pager"]

_SUMMARY_PROMPT = files("llmos").joinpath("prompts/summary.txt").read_text(encoding="utf-8")


@dataclass
class PageStats:
    """The paging counters of one process (``ProcStats`` extends them)."""

    page_outs: int = 0
    page_ins: int = 0
    page_faults: int = 0
    recalls: int = 0

    @property
    def hit_rate(self) -> float:
        """Share of explicit recalls served from RAM rather than disk (1.0 when none)."""
        return 1.0 - self.page_faults / self.recalls if self.recalls else 1.0


class Pager:
    """Keeps every process's RAM under budget, with the disk as backing store.

    Args:
        disk: where evicted pages go; None means eviction only (nothing can be paged back in).
        cpu: writes the summaries; None means extractive summaries.
        params: the paging knobs (``page_high``, ``page_low``, ``page_in_k``,
            ``page_in_threshold``, ``summary_tokens``); see :class:`~llmos.params.Params`.
    """

    def __init__(
        self, disk: Disk | None = None, *, cpu: CPU | None = None, params: Params | None = None
    ) -> None:
        p = params or Params()
        if not 0 < p.page_low < p.page_high <= 1:
            raise UsageError(
                f"the page marks need 0 < page_low < page_high <= 1, got page_low={p.page_low}, "
                f"page_high={p.page_high}; set them in Params",
                code="args",
            )
        self.disk = disk
        self.cpu = cpu
        self.high, self.low = p.page_high, p.page_low
        self.page_in_k, self.threshold = p.page_in_k, p.page_in_threshold
        self.summary_tokens = p.summary_tokens

    # -- the hooks the instruction cycle calls ------------------------------------------
    def recall(
        self, ram: RAM, stats: PageStats, message: str, trace: list[Event], *, step: int = 0
    ) -> None:
        """Demand paging at the start of a turn: page in what ``message`` needs.

        Runs before the message joins the journal, so what comes back sits just ahead of the
        question, as context the question is asked in. (Measured on the default model: with
        the same pages *after* the question it answered from a worked example instead.)
        """
        if self.disk is not None and self.page_in_k:
            self.demand(ram, stats, message, trace, step=step)
            self.relieve(ram, stats, trace, step=step, protect={p.id for p in ram if p.paged_in})

    def fit(self, ram: RAM, stats: PageStats, trace: list[Event], *, step: int = 0) -> None:
        """Before each step: page out until RAM is under budget, sparing the current turn."""
        turn = _current_turn(ram)
        start = ram.pages.index(turn[0]) if turn else len(ram)
        # the pages recalled for this turn sit just before its message: spare them too
        while start > 0 and ram.pages[start - 1].paged_in:
            start -= 1
        try:
            self.relieve(ram, stats, trace, step=step, protect={p.id for p in ram.pages[start:]})
        except ContextOverflow:
            if not turn:
                raise
            # the turn itself outgrew RAM (long results): keep only its message and its
            # latest call with its result, and let the rest of the turn go to disk too
            last = turn[-1].group
            keep = {turn[0].id} | {p.id for p in turn if last is not None and p.group == last}
            self.relieve(ram, stats, trace, step=step, protect=keep)

    def relieve(
        self, ram: RAM, stats: PageStats, trace: list[Event], *, step: int = 0,
        protect: Iterable[str] = (),
    ) -> None:
        """Page out the coldest units if RAM is above the high-water mark."""
        protect = set(protect)
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
            self.page_out(ram, stats, victims, trace, step=step)
            if ram.tokens >= start:
                break  # the summary is as large as what it replaced: stop, do not spin
        if ram.tokens > ram.budget:
            raise ContextOverflow(
                f"process {ram.pid} needs {ram.tokens} tokens but its RAM holds {ram.budget}, "
                "even after paging out everything outside the current turn: raise ram_tokens, "
                "or send shorter messages (a device result is cut at its max_output_chars)"
            )

    # -- page-out -------------------------------------------------------------------------
    def page_out(
        self, ram: RAM, stats: PageStats, victims: list[Page], trace: list[Event], *,
        step: int = 0,
    ) -> None:
        """Write ``victims`` to disk, then replace them in RAM by one summary page."""
        if self.disk is not None:
            # paged-in copies are on disk already; summaries go too, so every page id the
            # trace reports as paged out can be recalled
            fresh = [p for p in victims if not p.paged_in]
            if fresh:
                self.disk.write(fresh)  # durable before the pages leave RAM
        tainted = any(not p.trusted for p in victims)
        summary = Page(
            pid=ram.pid,
            kind="summary",
            role="system",
            # a summary may take a quarter of the space the pager controls (~3 chars a token)
            text=self._summarize(
                victims, chars=max(60, 3 * (ram.budget - ram.fixed_tokens) // 4)
            ),
            source="pager",
            trust="untrusted" if tainted else "trusted",
        )
        removed = ram.replace([p.id for p in victims], summary)
        stats.page_outs += len(removed)
        _record(ram, trace, step, "out", removed, "RAM above its high-water mark")

    def _summarize(self, pages: list[Page], *, chars: int = 400) -> str:
        # a summary of summaries keeps their gist, not their id lists (no nesting)
        ids = [p.id for p in pages if p.kind != "summary"]
        shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
        prefix = f"(paged out: {shown})" if ids else "(paged out)"
        heads = "; ".join(p.head() for p in pages)
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
    def demand(
        self, ram: RAM, stats: PageStats, query: str, trace: list[Event], *, step: int = 0
    ) -> list[Page]:
        """Automatic page-in: bring back what matches ``query`` above the threshold."""
        if self.disk is None or not query.strip():
            return []
        resident = {p.id for p in ram}
        # paged-in copies are resident and on disk: ask for enough hits to skip past them
        recalled = sum(1 for p in ram if p.paged_in)
        hits = self.disk.search(query, k=min(20, self.page_in_k + recalled), pid=ram.pid)
        chosen = [
            h.page
            for h in hits
            if h.page.id not in resident and (h.similarity or 0.0) >= self.threshold
        ][: self.page_in_k]
        # the best match goes last, nearest to where the model writes its next call
        chosen.reverse()
        return self.page_in(
            ram, stats, chosen, trace, step=step, reason=f"demand paging for {query[:60]!r}"
        )

    def page_in(
        self, ram: RAM, stats: PageStats, pages: Iterable[Page], trace: list[Event], *,
        reason: str, step: int = 0,
    ) -> list[Page]:
        """Append copies of disk pages to the journal, marked as recalled."""
        brought: list[Page] = []
        for page in pages:
            copy = page.model_copy(
                update={"paged_in": True, "pinned": False, "group": None, "last_used": time.time()}
            )
            brought.append(ram.append(copy))
        if brought:
            stats.page_ins += len(brought)
            _record(ram, trace, step, "in", brought, reason)
        return brought


def _record(
    ram: RAM, trace: list[Event], step: int, direction: Literal["in", "out"], pages: list[Page],
    reason: str,
) -> None:
    trace.append(
        Paged(
            pid=ram.pid, step=step, direction=direction,
            page_ids=[p.id for p in pages], tokens=sum(p.tokens for p in pages),
            reason=reason, resident_tokens=ram.tokens,
        )
    )


def _current_turn(ram: RAM) -> list[Page]:
    pages = ram.pages
    for i in range(len(pages) - 1, -1, -1):
        p = pages[i]
        if p.kind == "message" and p.role == "user" and not p.paged_in:
            return pages[i:]
    return []


def _cap(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"
