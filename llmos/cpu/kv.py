"""The KV cache of one llama.cpp context: which tokens are evaluated, and whose they are.

The CPU's working state is the KV cache: the attention keys and values of every token it has
read. :class:`KV` is its journal. It remembers the exact token sequence evaluated into
sequence 0 of the context, so a new prompt pays only for the suffix it does not share with
that sequence (``sync``): append-only prompts (the RAM journal) are extended, never re-read.

Several processes (slots) time-share the one sequence. A *context switch* (``switch``) copies
the outgoing slot's sequence state out (``llama_state_seq_get_data``, into a reused buffer)
and copies the incoming slot's saved state back in (``llama_state_seq_set_data``), so a
resumed process continues without re-reading its context. Saved states stay in memory up to a
byte budget; beyond it the coldest are spilled to files in a private temp dir and read back on
demand. Re-prefill is the last resort: a slot with no saved state (new, forgotten, or a state
llama.cpp refused) inherits the current context and reuses whatever prefix it shares with it
(the common header of processes on one kernel).

Why one sequence and copies, rather than one ``seq_id`` per resident process: llama.cpp splits
one context's cells among its sequences, so N resident processes would each get n_ctx/N
tokens (or a context N times larger, allocated up front), while a copy costs milliseconds.

Invariants:
- ``tokens`` always equals what llama.cpp holds for sequence 0; every decode, removal and
  restore goes through this class, and any failure clears both sides rather than let them drift;
- a saved state is stored with the exact tokens it holds, so reuse is decided by comparing
  tokens, never trusted blindly; a restored state is dropped from the store (it goes stale as
  soon as its slot decodes) and saved afresh at the next switch out;
- ``fresh`` is True only while ``logits()`` gives the distribution after ``tokens[-1]``; a save
  copies those logits too (one row, n_vocab floats) and a restore serves the copy, so a resumed
  slot neither re-evaluates its last token nor sees logits moved by a different batch shape;
- the context needs a full-size sliding-window cache (``swa_full``): a window-sized one cannot
  cut at an arbitrary position; if a cut still fails, the cache is cleared and re-prefilled.

Neighbours: ``llmos.cpu.llama.LlamaCPU`` owns one KV and decodes through it;
the kernel switches slots (one per process) through the CPU's ``Switching`` ability
(``llmos.cpu.base``) and records each :class:`~llmos.cpu.base.Switch`.
"""

from __future__ import annotations

import ctypes
import shutil
import tempfile
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from llmos.cpu.base import Switch
from llmos.errors import ContextOverflow, CPUError

__all__ = ["KV"]

_CHUNK = 1 << 20  # buffers grow in whole MiB, so a slot's next save usually fits its old buffer


@dataclass
class _Saved:
    tokens: list[int]
    size: int  # bytes of state
    buf: npt.NDArray[np.uint8] | None  # in memory, or None when spilled
    path: Path | None  # the spill file, or None while in memory
    used: float  # monotonic time of the save: the coldest spills first
    logits: npt.NDArray[np.float32] | None = None  # after tokens[-1], if they were fresh


class KV:
    """The tokens whose KV state sits in the context's sequence 0, and the slots' saved states.

    ``tokens`` is the evaluated sequence of the current ``slot``; ``fresh`` says the logits
    buffer holds the distribution after ``tokens[-1]`` (so an identical prompt can sample at
    once); ``budget`` is how many bytes of saved states stay in memory before spilling.
    """

    def __init__(
        self,
        llama_cpp: Any,
        ctx: Any,
        n_batch: int,
        n_ctx: int,
        *,
        n_vocab: int = 0,
        budget: int = 512 << 20,
    ) -> None:
        self._lib = llama_cpp
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._n_batch = n_batch
        self.n_ctx = n_ctx
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.tokens: list[int] = []
        self.fresh = False
        self.slot: Hashable = 0
        self.budget = budget  # bytes of saved states kept in memory
        self._n_vocab = n_vocab  # 0: logits are not saved with a state
        self._held: npt.NDArray[np.float32] | None = None  # restored logits, while fresh
        self._saved: dict[Hashable, _Saved] = {}
        self._spare: list[npt.NDArray[np.uint8]] = []  # buffers of restored states, for reuse
        self._dir: Path | None = None
        self._files = 0

    def free(self) -> None:
        self._lib.llama_batch_free(self._batch)
        self.drop_all()

    def clear(self) -> None:
        self._lib.llama_memory_clear(self._mem, True)
        self.tokens = []
        self.fresh = False
        self._held = None

    # ---- context switch -----------------------------------------------------------------

    def switch(self, slot: Hashable) -> Switch:
        """Make ``slot`` the owner of the context: save the current slot, restore ``slot``."""
        old = self.slot
        if slot == old:
            return Switch(from_slot=old, to_slot=slot)
        saved_bytes, save_s = self._save(old)
        self.slot = slot
        entry = self._saved.pop(slot, None)
        if entry is None:
            # Nothing saved: keep the current context, whose shared prefix the slot reuses.
            spilled = self._enforce_budget()
            return Switch(old, slot, saved_bytes, save_s, source="none", spilled_bytes=spilled)
        started = time.perf_counter()
        source: Literal["memory", "file"] = "memory" if entry.buf is not None else "file"
        buf = entry.buf if entry.buf is not None else self._read(entry)
        self.clear()
        n = self._lib.llama_state_seq_set_data(self._ctx, _ptr(buf), entry.size, 0)
        if n == 0:
            # llama.cpp refused the state: start empty, the next prompt is prefilled (last resort).
            self._lib.llama_memory_clear(self._mem, True)
        else:
            self.tokens = list(entry.tokens)
            self._held = entry.logits
            self.fresh = entry.logits is not None
        self._release(buf)
        restore_s = time.perf_counter() - started
        return Switch(
            old, slot, saved_bytes, save_s, restored_bytes=entry.size if n else 0,
            restore_seconds=restore_s, restored_tokens=len(self.tokens), source=source,
            spilled_bytes=self._enforce_budget(),
        )

    def forget(self, slot: Hashable) -> None:
        """Drop ``slot``'s saved state (a process that ended); the current context stays."""
        entry = self._saved.pop(slot, None)
        if entry is not None:
            self._discard(entry)

    def drop_all(self) -> None:
        """Drop every saved state and spill file."""
        for entry in self._saved.values():
            self._discard(entry)
        self._saved.clear()
        self._spare.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def states(self) -> dict[Hashable, tuple[Literal["memory", "file"], int]]:
        """Saved states by slot: where each one is and its size in bytes."""
        return {
            slot: ("memory" if e.buf is not None else "file", e.size)
            for slot, e in self._saved.items()
        }

    def _save(self, slot: Hashable) -> tuple[int, float]:
        if not self.tokens:
            return 0, 0.0
        started = time.perf_counter()
        size = int(self._lib.llama_state_seq_get_size(self._ctx, 0))
        old = self._saved.pop(slot, None)
        if old is not None:
            self._discard(old)
        buf = self._take(size)
        n = int(self._lib.llama_state_seq_get_data(self._ctx, _ptr(buf), size, 0))
        if n != size:  # a partial copy is useless: the slot will re-prefill instead
            self._release(buf)
            return 0, time.perf_counter() - started
        logits = np.array(self.logits(self._n_vocab)) if self.fresh and self._n_vocab else None
        if logits is not None:
            logits.setflags(write=False)  # served as is after a restore: nobody may change it
        self._saved[slot] = _Saved(list(self.tokens), size, buf, None, time.monotonic(), logits)
        return size, time.perf_counter() - started

    def _enforce_budget(self) -> int:
        """Spill the coldest in-memory states to files until the rest fits the budget."""
        resident = sorted((e for e in self._saved.values() if e.buf is not None),
                          key=lambda e: e.used)
        held = sum(len(e.buf) for e in resident if e.buf is not None)
        held += sum(len(b) for b in self._spare)
        while self._spare and held > self.budget:
            held -= len(self._spare.pop())
        spilled = 0
        for entry in resident:
            if held <= self.budget:
                break
            assert entry.buf is not None
            held -= len(entry.buf)
            spilled += entry.size
            entry.path = self._spill_path()
            entry.buf[: entry.size].tofile(entry.path)
            entry.buf = None
        return spilled

    def _spill_path(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="llmos-kv-"))
        self._files += 1
        return self._dir / f"state-{self._files}.bin"

    def _read(self, entry: _Saved) -> npt.NDArray[np.uint8]:
        assert entry.path is not None
        buf = self._take(entry.size)
        with entry.path.open("rb") as fh:
            fh.readinto(buf[: entry.size].data)
        entry.path.unlink(missing_ok=True)
        entry.path = None
        return buf

    def _take(self, size: int) -> npt.NDArray[np.uint8]:
        """A buffer of at least ``size`` bytes: the smallest spare that fits, else a new one."""
        fits = [i for i, b in enumerate(self._spare) if len(b) >= size]
        if fits:  # (by index: == on arrays compares their elements)
            return self._spare.pop(min(fits, key=lambda i: len(self._spare[i])))
        return np.empty(-(-size // _CHUNK) * _CHUNK, dtype=np.uint8)

    def _release(self, buf: npt.NDArray[np.uint8]) -> None:
        self._spare.append(buf)

    def _discard(self, entry: _Saved) -> None:
        if entry.buf is not None:
            self._release(entry.buf)
        if entry.path is not None:
            entry.path.unlink(missing_ok=True)

    # ---- evaluation ---------------------------------------------------------------------

    def rewind(self, keep: int) -> None:
        """Drop every evaluated token after the first ``keep``."""
        if keep >= len(self.tokens):
            return
        if not self._lib.llama_memory_seq_rm(self._mem, 0, keep, -1):
            self.clear()  # the cache cannot cut there (e.g. a sliding window): start over
            return
        del self.tokens[keep:]
        self.fresh = False
        self._held = None

    def sync(self, prompt: Sequence[int]) -> int:
        """Make the context hold exactly ``prompt`` with fresh logits; return tokens reused."""
        common = 0
        for have, want in zip(self.tokens, prompt, strict=False):
            if have != want:
                break
            common += 1
        if common == len(prompt) == len(self.tokens) and self.fresh:
            return common
        # Re-evaluate at least the last prompt token: its logits start the decoding.
        keep = min(common, len(prompt) - 1)
        self.rewind(keep)
        reused = len(self.tokens)
        self.extend(prompt[reused:])
        return reused

    def extend(self, new: Sequence[int]) -> None:
        """Evaluate ``new`` after the current tokens, asking logits for the last one only."""
        if len(self.tokens) + len(new) > self.n_ctx:
            raise ContextOverflow(
                f"the context window is full ({self.n_ctx} tokens); evict pages from RAM, "
                "lower max_tokens, or load the model with a larger n_ctx"
            )
        batch = self._batch
        for start in range(0, len(new), self._n_batch):
            chunk = new[start : start + self._n_batch]
            base = len(self.tokens)
            batch.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = base + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = i == len(chunk) - 1
            self.fresh = False
            self._held = None
            code = self._lib.llama_decode(self._ctx, batch)
            if code != 0:
                # Partial batches leave the cache uncertain: forget it, the next call re-prefills.
                self.clear()
                raise CPUError(
                    f"llama_decode failed with code {code} after {base} tokens; "
                    "the KV cache was cleared, retry the call"
                )
            self.tokens.extend(chunk)
            self.fresh = True

    def logits(self, n_vocab: int) -> npt.NDArray[np.float32]:
        """A read-only view of the logits after the last evaluated token."""
        if not self.fresh:
            raise CPUError("no logits are available; evaluate a token first")
        if self._held is not None:
            return self._held
        ptr = self._lib.llama_get_logits_ith(self._ctx, -1)
        view: npt.NDArray[np.float32] = np.ctypeslib.as_array(ptr, shape=(n_vocab,))
        return view


def _ptr(buf: npt.NDArray[np.uint8]) -> Any:
    return buf.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
