"""The python peripheral: run a short program in a walled-off worker process.

Every call starts a fresh worker (``_pyworker.py``) with ``python -I -B``, an empty
environment, an empty temporary working directory, no inherited descriptors and its own
session (so its process group can be killed as one). The worker walls itself in (network
namespace, uid drop, rlimits) *before* it reads the program, compiles it with RestrictedPython
(a program too big to compile takes the worker down, not the kernel) and answers with one
JSON object on stdout. The kernel side here only writes the code, reads a size-capped reply
under a wall-clock deadline, kills the group when the deadline passes, and turns every
failure of the program into a :class:`~llmos.errors.Fault` with a short message.

Invariants:
- nothing from the worker is unpickled or evaluated: the reply is JSON validated by a
  pydantic model, read up to a byte cap;
- a worker never outlives its call (the process group is SIGKILLed in ``finally``), so a
  worker that dies or hangs cannot affect the next call;
- the limits are per instance (``Python(timeout_s=..., memory_mb=...)``) with safe defaults;
- a fault is one line: the program's error text has its newlines escaped, and what it printed
  before the error is quoted and cut (:func:`~llmos.peripherals.base.quote`).

Neighbours: ``llmos.kernel.syscall`` dispatches ``python.run`` under :attr:`Python.limits`
(set a little above the worker's own deadline, as a backstop); ``_pyworker`` is the sandbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmos.errors import Fault, PeripheralError, UsageError
from llmos.peripherals.base import Example, Limits, Peripheral, free_text, quote, syscall

__all__ = ["IMPORTABLE", "Python", "RunArgs", "Walls"]

IMPORTABLE = (
    "collections", "datetime", "decimal", "fractions", "itertools", "json", "math", "random",
    "re", "statistics",
)
_WORKER = Path(__file__).with_name("_pyworker.py")
_STARTUP_S = 10.0  # slack the kernel's backstop deadline gives worker start-up and teardown


def _balanced(depth: int = 3) -> str:
    """Regex of code whose brackets balance (nested up to ``depth``), strings and comments
    read as atoms."""
    atoms = r"""[^()\[\]{}"'#]|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|#[^\n]*"""
    level = f"(?:{atoms})*"
    for _ in range(depth):
        level = f"(?:{atoms}|\\({level}\\)|\\[{level}\\]|\\{{{level}\\}})*"
    return f"^{level}$"


# Only the grammar uses this shape (pydantic does not check it): a program is written with its
# brackets balanced. Small models end code inside a JSON string with the object's brace,
# ``print(x)}"}}``, because ``)}`` outranks ``)"`` after a call in code (measured on Qwen2.5
# 0.5B: 10 of 20 GSM8K programs failed with "unmatched '}'"); with the shape, the string can
# only close where the program does.
BALANCED_CODE = _balanced()


class RunArgs(BaseModel):
    """Arguments of ``python.run``."""

    model_config = ConfigDict(extra="forbid")

    code: str = free_text(
        min_length=1,
        json_schema_extra={"pattern": BALANCED_CODE},
        description=(
            "A short Python program. What it print()s and the value of its last line come "
            f"back. Importable: {', '.join(IMPORTABLE)}. No files, network or names "
            "starting with '_'."
        ),
    )


class Walls(BaseModel):
    """Which operating-system walls held around the last worker (RestrictedPython always does).

    Attributes:
        network: the worker ran in its own network namespace (no interfaces up).
        user: the worker ran without root (dropped to ``nobody`` when started as root).
        nproc: RLIMIT_NPROC=0 binds (it does not bind root), so no fork or thread.
    """

    network: bool = False
    user: bool = False
    nproc: bool = False


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "error"]
    output: str = ""
    value: str | None = None
    truncated: bool = False
    kind: Literal[
        "syntax", "refused", "compile", "memory", "recursion", "import", "runtime", "output", ""
    ] = ""
    message: str = ""
    walls: Walls = Field(default_factory=Walls)


class Python(Peripheral):
    """Runs a short Python program in a sandbox; returns what it prints and its last value.

    Use it for exact calculation, counting, sorting or parsing text. Only pure modules can be
    imported; there are no files and no network.
    """

    name = "python"
    # generic worked examples: dates, counting in text, a sum over a range. A base model imitates
    # the last ones most (measured: the range example last lets it write `range` loops), and
    # each program ends with the value to return
    examples: tuple[Example, ...] = (
        Example(
            question="How many days are there from 2024-01-15 to 2024-03-01?",
            calls=((
                "python.run",
                {"code": "from datetime import date\n(date(2024, 3, 1) - date(2024, 1, 15)).days"},
                "46",
            ),),
            answer="46",
        ),
        Example(
            question="How many times does the word 'the' occur in 'the cat saw the dog'?",
            calls=((
                "python.run",
                {"code": "text = 'the cat saw the dog'\ntext.split().count('the')"},
                "2",
            ),),
            answer="2",
        ),
        Example(
            question="What is the sum of the squares of the numbers from 1 to 10?",
            calls=(("python.run", {"code": "sum(n * n for n in range(1, 11))"}, "385"),),
            answer="385",
        ),
    )

    def __init__(
        self,
        *,
        timeout_s: float = 5.0,
        cpu_s: float = 5.0,
        memory_mb: int = 256,
        max_output_chars: int = 4000,
        max_code_chars: int = 1_000_000,
        seed: int = 0,
        isolate_network: bool = True,
    ) -> None:
        """Set the limits every call runs under.

        Args:
            timeout_s: wall-clock seconds a program may run before its process group is killed.
            cpu_s: CPU seconds (RLIMIT_CPU, whole seconds, rounded up).
            memory_mb: address space of the worker (RLIMIT_AS), interpreter included (~20 MB).
            max_output_chars: cap on printed text and on the last value's repr (characters).
            max_code_chars: longer programs are refused before a worker starts.
            seed: the seed ``random`` starts from in every run (runs are reproducible).
            isolate_network: run the worker in its own network namespace when the machine
                allows it (root, or unprivileged user namespaces).
        """
        if timeout_s <= 0 or cpu_s <= 0 or memory_mb < 64 or max_output_chars < 1:
            raise UsageError(
                "Python limits must be positive and memory_mb at least 64 (the interpreter "
                f"needs ~20 MB); got timeout_s={timeout_s}, cpu_s={cpu_s}, "
                f"memory_mb={memory_mb}, max_output_chars={max_output_chars}",
                code="python-limits",
            )
        self.timeout_s = timeout_s
        self.cpu_s = cpu_s
        self.memory_mb = memory_mb
        self.max_output_chars = max_output_chars
        self.max_code_chars = max_code_chars
        self.seed = seed
        self.isolate_network = isolate_network
        self.walls = Walls()  # as reported by the last worker
        # Per-instance limits (``limits`` is declared on the class): the kernel's thread
        # deadline is only a backstop; the worker deadline below is the one that bites.
        self.__dict__["limits"] = Limits(
            timeout_s=timeout_s + _STARTUP_S, max_output_chars=2 * max_output_chars + 200
        )

    # Pure: the worker reads no file, network or environment and seeds its random, so what a
    # program prints is a function of its code alone. Code written before the model read
    # untrusted text gives a trusted result (a second run in the same turn is not tainted).
    @syscall(sensitive=True, pure=True)
    def run(self, args: RunArgs) -> str:
        """Run a Python program; returns its printed output and the value of its last line."""
        if len(args.code) > self.max_code_chars:
            raise Fault(
                f"the program is {len(args.code)} characters long; the limit is "
                f"{self.max_code_chars}: write a shorter program"
            )
        reply = self._execute(args.code)
        self.walls = reply.walls
        if reply.status == "error":
            raise Fault(self._explain(reply))
        parts = [reply.output.rstrip("\n")] if reply.output else []
        if reply.value is not None:
            parts.append(reply.value + (" [cut]" if reply.truncated else ""))
        text = "\n".join(parts)
        return text or "(no output: print() something or end with an expression)"

    def _explain(self, reply: _Reply) -> str:
        if reply.kind == "memory":
            message = f"ran out of memory (limit {self.memory_mb} MB): use smaller data"
        elif reply.kind == "output":
            message = (
                f"printed more than {self.max_output_chars} characters: print less "
                "(a count, a sample or a summary)"
            )
        elif reply.kind == "recursion":
            message = f"{_one_line(reply.message)}: recursion too deep; use a loop"
        else:
            message = _one_line(reply.message)
        if reply.output and reply.kind != "output":
            message += "; printed before the error: " + quote(reply.output[-300:], 300)
        return message

    def _config(self) -> str:
        return json.dumps({
            "cpu_s": self.cpu_s,
            "memory_mb": self.memory_mb,
            "max_output_chars": self.max_output_chars,
            "max_code_chars": self.max_code_chars,
            "seed": self.seed,
            "isolate_network": self.isolate_network,
        })

    def _execute(self, code: str) -> _Reply:
        workdir = tempfile.mkdtemp(prefix="llmos-python-")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-B", str(_WORKER), self._config()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
                env={},
                close_fds=True,
                start_new_session=True,  # its own session and process group: killpg reaches all
            )
        except OSError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            raise PeripheralError(f"could not start the Python worker: {exc}") from exc
        cap = 8 * self.max_output_chars + 65536  # bytes: JSON escapes at most ~6x, plus slack
        try:
            out, err, timed_out, overflow = _exchange(
                proc, code.encode("utf-8", "surrogatepass"), self.timeout_s, cap
            )
        finally:
            _kill_group(proc)
            shutil.rmtree(workdir, ignore_errors=True)
        if timed_out:
            raise Fault(
                f"timed out after {self.timeout_s:g} s: make the loop smaller or the input shorter"
            )
        if overflow:
            raise Fault(f"output too large (over {cap} bytes): print less")
        rc = proc.returncode
        try:
            return _Reply.model_validate_json(out)
        except ValidationError:
            if rc in (-signal.SIGKILL, -signal.SIGXCPU):  # RLIMIT_CPU: the hard limit SIGKILLs
                raise Fault(
                    f"used up its {self.cpu_s:g} s of CPU time and was stopped: make the loop "
                    "smaller or the numbers less huge"
                ) from None
            detail = err.decode("utf-8", "replace").strip().splitlines()[-1:]
            said = f" ({quote(detail[0], 200)})" if detail else ""
            raise Fault(
                f"the Python worker died (exit status {rc}){said}: simplify the program and "
                "try again"
            ) from None


def _exchange(
    proc: subprocess.Popen[bytes], data: bytes, timeout_s: float, cap: int
) -> tuple[bytes, bytes, bool, bool]:
    """Write ``data`` to the worker and read its stdout/stderr, each up to ``cap`` bytes."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    stdin_fd, view, pos = proc.stdin.fileno(), memoryview(data), 0
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_WRITE)
    timed_out = overflow = False
    try:
        while sel.get_map() and not overflow:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(remaining):
                fd = int(key.fd)
                if fd == stdin_fd:
                    try:
                        pos += os.write(fd, view[pos : pos + 65536])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        pos = len(data)  # the worker stopped reading; its reply says why
                    if pos >= len(data):
                        sel.unregister(fd)
                        proc.stdin.close()
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(fd)
                    continue
                bufs[fd] += chunk
                overflow = overflow or len(bufs[fd]) > cap
        # Wait for the exit without reaping: the zombie keeps the process-group id reserved
        # until _kill_group has signalled the group.
        while not timed_out and not overflow:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG):
                break
            if time.monotonic() >= deadline:
                timed_out = True
            time.sleep(0.002)
    finally:
        sel.close()
    return bytes(bufs[proc.stdout.fileno()]), bytes(bufs[proc.stderr.fileno()]), \
        timed_out, overflow


def _one_line(text: str) -> str:
    """The program's error line as one line: newlines and other controls shown as escapes."""
    return text if text.isprintable() else repr(text)[1:-1]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's whole process group, then reap the worker and close its pipes."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None and not pipe.closed:
            pipe.close()
