"""The CPU: a model that decodes the next instruction (one syscall) from the context.

A CPU backend turns a prompt into text, optionally under a JSON schema it must satisfy. The
kernel asks for exactly one syscall per step; a grammar-capable backend (``LlamaCPU``) can only
emit text that parses and validates against the schema, so the kernel never sees a malformed
call from it. Backends also count tokens exactly with the model's own tokenizer, because RAM
budgets are in tokens.

Invariants:
- ``count_tokens(a + b) <= count_tokens(a) + count_tokens(b) + 1`` in practice; the kernel
  only relies on counts of whole rendered pages, measured by the same tokenizer;
- ``complete`` with a schema returns text that is valid JSON for that schema whenever
  ``stop`` is ``"grammar"``; a value cut short by ``max_tokens`` comes back with
  ``stop == "length"`` and is never passed off as whole (the kernel turns it into a fault
  the model reads: "your call was cut short").

Neighbours: ``llmos.kernel.sched`` calls ``complete`` once per step; ``llmos.memory.ram``
calls ``count_tokens`` for every page.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["CPU", "Decoding"]


@dataclass(frozen=True)
class Decoding:
    """The result of one ``CPU.complete`` call, with its cost.

    Attributes:
        text: what the model wrote (JSON when a schema was given).
        prompt_tokens: tokens in the prompt.
        reused_tokens: prompt tokens whose KV state was already on the CPU (no prefill).
        prefilled_tokens: prompt tokens that had to be evaluated.
        decoded_tokens: tokens the model sampled.
        forced_tokens: tokens the grammar forced and the CPU fast-forwarded without sampling.
        logprob: sum of the log-probabilities of the sampled tokens (forced tokens add 0).
        seconds: wall time of the call.
        stop: why decoding ended: the grammar accepted, the token limit, or end of text.
    """

    text: str
    prompt_tokens: int
    reused_tokens: int
    prefilled_tokens: int
    decoded_tokens: int
    forced_tokens: int
    logprob: float
    seconds: float
    stop: Literal["grammar", "length", "eos"]


@runtime_checkable
class CPU(Protocol):
    """What the kernel needs from a model backend."""

    @property
    def name(self) -> str:
        """A short name for logs and traces (the model file, or the server's model id)."""
        ...

    @property
    def n_ctx(self) -> int:
        """The context window, in tokens."""
        ...

    def count_tokens(self, text: str) -> int:
        """Exact number of tokens ``text`` takes in the model's tokenizer (no BOS)."""
        ...

    def complete(
        self,
        prompt: str,
        *,
        schema: Mapping[str, Any] | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        slot: Hashable = 0,
    ) -> Decoding:
        """Continue ``prompt``; under ``schema`` the text is one JSON value valid for it.

        Args:
            prompt: the whole rendered context. Backends reuse the KV state of the longest
                prefix they already evaluated for ``slot``.
            schema: a JSON schema the continuation must satisfy, or None for free text.
            max_tokens: the most tokens to sample.
            temperature: 0 is greedy; above 0 samples with ``seed``.
            seed: the sampling seed, so runs repeat.
            slot: whose KV state this is (a process id); backends that keep several
                sequences resident keep one per slot.
        """
        ...
