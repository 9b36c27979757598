"""The KV cache of one llama.cpp context: which tokens are evaluated, and how to change them.

The CPU's working state is the KV cache: the attention keys and values of every token it has
read. :class:`KV` is its journal. It remembers the exact token sequence evaluated into
sequence 0 of the context, so a new prompt pays only for the suffix it does not share with
that sequence (``sync``): append-only prompts (the RAM journal) are extended, never re-read.

Invariants:
- ``tokens`` always equals what llama.cpp holds for sequence 0; every decode and removal goes
  through this class, and any failure clears both sides rather than let them drift;
- ``fresh`` is True only while the logits buffer holds the distribution after ``tokens[-1]``;
- the context needs a full-size sliding-window cache (``swa_full``): a window-sized one cannot
  cut at an arbitrary position; if a cut still fails, the cache is cleared and re-prefilled.

Neighbours: ``llmos.cpu.llama.LlamaCPU`` owns one KV and decodes through it. Per-process
(per-slot) KV save and restore (llama_state_seq_get_data/set_data) belongs in ``switch``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from llmos.errors import ContextOverflow, CPUError

__all__ = ["KV"]


class KV:
    """The tokens whose KV state sits in the context's sequence 0, and how to change them.

    ``tokens`` is the evaluated sequence; ``fresh`` says the logits buffer holds the
    distribution after ``tokens[-1]`` (so an identical prompt can sample at once).
    """

    def __init__(self, llama_cpp: Any, ctx: Any, n_batch: int, n_ctx: int) -> None:
        self._lib = llama_cpp
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._n_batch = n_batch
        self.n_ctx = n_ctx
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.tokens: list[int] = []
        self.fresh = False
        self.slot: Hashable = 0

    def free(self) -> None:
        self._lib.llama_batch_free(self._batch)

    def clear(self) -> None:
        self._lib.llama_memory_clear(self._mem, True)
        self.tokens = []
        self.fresh = False

    def switch(self, slot: Hashable) -> None:
        """Make ``slot`` the owner of the context.

        There is one context for now: the next slot reuses whatever prefix it shares with the
        previous one. Per-slot save/restore of sequence state belongs here.
        """
        self.slot = slot

    def rewind(self, keep: int) -> None:
        """Drop every evaluated token after the first ``keep``."""
        if keep >= len(self.tokens):
            return
        if not self._lib.llama_memory_seq_rm(self._mem, 0, keep, -1):
            self.clear()  # the cache cannot cut there (e.g. a sliding window): start over
            return
        del self.tokens[keep:]
        self.fresh = False

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
        ptr = self._lib.llama_get_logits_ith(self._ctx, -1)
        view: npt.NDArray[np.float32] = np.ctypeslib.as_array(ptr, shape=(n_vocab,))
        return view
