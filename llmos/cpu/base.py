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

Optional abilities: a backend that keeps per-process KV state also implements
:class:`Switching` (``switch`` a slot onto the CPU and report its cost, ``forget`` a slot whose
process ended). The kernel checks for it once, when it boots, and asks for nothing else.

Neighbours: the instruction cycle (``llmos.kernel``) calls ``complete`` once per step;
``llmos.memory.ram`` calls ``count_tokens`` for every page; ``llmos.cpu.kv`` does the switching
for ``LlamaCPU``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["CPU", "Decoding", "Switch", "Switching"]


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


@dataclass(frozen=True)
class Switch:
    """What one context switch did and cost.

    Attributes:
        from_slot: the slot that owned the context before.
        to_slot: the slot that owns it now.
        saved_bytes: bytes of KV state copied out for ``from_slot`` (0: nothing resident).
        save_seconds: time to copy them out.
        restored_bytes: bytes of KV state copied in for ``to_slot``.
        restore_seconds: time to copy them in (and read them from a file if spilled).
        restored_tokens: tokens whose KV state came back (no re-prefill needed for them).
        source: where ``to_slot``'s state came from: ``memory``, a spilled ``file``, ``none``
            (no saved state: the slot reuses the prefix it shares with the current context),
            or ``same`` (the slot already owned the context; nothing moved).
        spilled_bytes: bytes of colder states this switch moved from memory to files.
    """

    from_slot: Hashable
    to_slot: Hashable
    saved_bytes: int = 0
    save_seconds: float = 0.0
    restored_bytes: int = 0
    restore_seconds: float = 0.0
    restored_tokens: int = 0
    source: Literal["memory", "file", "none", "same"] = "same"
    spilled_bytes: int = 0


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


@runtime_checkable
class Switching(Protocol):
    """The optional abilities of a CPU that keeps per-process (per-slot) KV state."""

    def switch(self, slot: Hashable) -> Switch:
        """Give the context to ``slot``, saving the previous owner's state; say what it cost."""
        ...

    def forget(self, slot: Hashable) -> None:
        """Drop ``slot``'s saved state (its process ended or left this CPU)."""
        ...
