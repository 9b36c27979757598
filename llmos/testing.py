"""Aids for testing agents and peripherals without a model.

- :class:`ScriptedCPU` replays given instructions, so a test of kernel logic is fast and
  deterministic. It is a test aid: every capability is also tested on the real model.
- :class:`PerProcessCPU` replays one script per process (for ``Kernel.run_all``), and can
  charge each step's real cost on a real CPU (a benchmark that needs fixed calls).
- :func:`run_syscall` runs one syscall of a peripheral through the same validation, limits
  and output caps the kernel uses.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from llmos.cpu.base import CPU, Decoding
from llmos.errors import CPUError
from llmos.kernel.syscall import Outcome, SyscallTable
from llmos.peripherals.base import Peripheral

__all__ = ["PerProcessCPU", "ScriptedCPU", "run_syscall"]

_WORD = re.compile(r"\w+|[^\w\s]|\s+")


class ScriptedCPU:
    """A CPU that replays a script of instructions, one per ``complete`` call.

    Args:
        script: each item is a call (``{"syscall": ..., "args": ...}``) or raw text (to test
            how the kernel handles malformed output).
        n_ctx: the context window it claims, in tokens.

    Tokens are counted as words, punctuation marks and runs of whitespace: deterministic and
    roughly the size of a real tokenizer's count.
    """

    def __init__(self, script: Iterable[Mapping[str, Any] | str], *, n_ctx: int = 4096) -> None:
        self.script = [s if isinstance(s, str) else json.dumps(dict(s)) for s in script]
        self.prompts: list[str] = []
        self.schemas: list[Mapping[str, Any] | None] = []
        self._n_ctx = n_ctx
        self._last = ""

    @property
    def name(self) -> str:
        """``scripted``."""
        return "scripted"

    @property
    def n_ctx(self) -> int:
        """The context window it claims."""
        return self._n_ctx

    def count_tokens(self, text: str) -> int:
        """Words, punctuation marks and whitespace runs."""
        return len(_WORD.findall(text))

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
        """Return the next scripted instruction; raise :class:`CPUError` when none is left."""
        start = time.perf_counter()
        if not self.script:
            raise CPUError("the ScriptedCPU ran out of instructions")
        self.prompts.append(prompt)
        self.schemas.append(schema)
        text = self.script.pop(0)
        common = _common_prefix(self._last, prompt)
        self._last = prompt + text
        total = self.count_tokens(prompt)
        reused = self.count_tokens(prompt[:common])
        return Decoding(
            text=text,
            prompt_tokens=total,
            reused_tokens=reused,
            prefilled_tokens=total - reused,
            decoded_tokens=self.count_tokens(text),
            forced_tokens=0,
            logprob=0.0,
            seconds=time.perf_counter() - start,
            stop="grammar",
        )


class PerProcessCPU:
    """A CPU that replays one script per process: the decode for ``slot`` takes that pid's next.

    Args:
        scripts: each process id's script (as for :class:`ScriptedCPU`).
        timed: a real CPU to charge the cost on: each step prefills the real prompt on it and
            samples as many real tokens as the scripted call has, then returns the scripted
            call in place of the sampled text (whole, as a grammar ends it). None: no cost.
        before: called with the slot before each decode (on the CPU thread), so a test can
            tell which process is on the CPU while another one's device runs.

    ``order`` lists the slots in the order they decoded.
    """

    def __init__(
        self,
        scripts: Mapping[int, Iterable[Mapping[str, Any] | str]],
        *,
        timed: CPU | None = None,
        before: Callable[[Hashable], None] | None = None,
    ) -> None:
        self.cpus = {pid: ScriptedCPU(s) for pid, s in scripts.items()}
        self.timed = timed
        self.before = before
        self.order: list[Hashable] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The timed CPU's name, or ``per-process``."""
        return self.timed.name if self.timed is not None else "per-process"

    @property
    def n_ctx(self) -> int:
        """The timed CPU's context, or 4096."""
        return self.timed.n_ctx if self.timed is not None else 4096

    def count_tokens(self, text: str) -> int:
        """The timed CPU's count, or :class:`ScriptedCPU`'s."""
        if self.timed is not None:
            return self.timed.count_tokens(text)
        return len(_WORD.findall(text))

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
        """The next instruction of ``slot``'s script (its real cost charged when ``timed``)."""
        self.order.append(slot)
        if self.before is not None:
            self.before(slot)
        scripted = self.cpus[int(str(slot))]
        if self.timed is None:
            return scripted.complete(prompt, schema=schema, max_tokens=max_tokens)
        with self._lock:
            if not scripted.script:
                raise CPUError(f"the script of process {slot} ran out of instructions")
            text = scripted.script.pop(0)
        real = self.timed.complete(prompt, max_tokens=self.timed.count_tokens(text),
                                   temperature=temperature, seed=seed, slot=slot)
        # the real decode stopped at its token limit; the scripted call is whole
        return dataclasses.replace(real, text=text, stop="grammar")


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def run_syscall(peripheral: Peripheral, name: str, args: Mapping[str, Any]) -> Outcome:
    """Run one syscall of ``peripheral`` without a model, as the kernel would.

    ``name`` may be the full name (``"calculator.evaluate"``) or the method alone
    (``"evaluate"``). The arguments are validated against the syscall's model and the call runs
    under the peripheral's limits; the :class:`~llmos.kernel.syscall.Outcome` says whether it
    succeeded (``status == "ok"``) or faulted, and carries the text the model would read.
    """
    table = SyscallTable([peripheral])
    full = name if name in table.specs else f"{peripheral.name}.{name}"
    # the test wrote the arguments: they are the program's own, so trusted
    return table.dispatch(full, args, trusted_args=True)
