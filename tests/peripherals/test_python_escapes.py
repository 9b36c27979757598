"""Hostile input for the python peripheral: the escape corpus, resource bombs, the OS walls.

Every case of ``security/python_sandbox_escapes.json`` runs through the kernel's dispatch path
with the default limits. A ``refuse`` case must end in a fault that is not a resource limit; a
``contain`` case may run or fault. For every case: a canary file next to the test must be
neither read nor joined by a new file, and the peripheral must answer a normal call after it.
Payloads are "armed" first: their shell commands and host paths are pointed at the canary, so
that a technique which worked would leave a mark instead of running ``id``.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llmos.kernel.syscall import Outcome, SyscallTable
from llmos.peripherals import _pyworker
from llmos.peripherals.python import Python

LIMIT_WORDS = ("timed out", "CPU time", "out of memory", "printed more than", "too large",
               "recursion too deep", "output too large")


@dataclass
class Canary:
    """A secret file in a private directory that no payload may read or write next to."""

    dir: Path
    file: Path
    token: str

    def intact(self, text: str) -> list[str]:
        problems = []
        if self.token in text:
            problems.append("canary token leaked into the result")
        if sorted(p.name for p in self.dir.iterdir()) != ["secret.txt"]:
            problems.append(f"files appeared next to the canary: {sorted(os.listdir(self.dir))}")
        if self.file.read_text() != self.token:
            problems.append("canary file changed")
        return problems


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    token = "CANARY-" + secrets.token_hex(8)
    file = tmp_path / "secret.txt"
    file.write_text(token)
    return Canary(tmp_path, file, token)


def payload_of(case: dict[str, Any]) -> str:
    gen = case.get("generate")
    if not gen:
        return str(case["payload"])
    text = gen["prefix"] + gen["unit"] * gen["count"]
    if "suffix_unit" in gen:
        text += gen.get("middle", "") + gen["suffix_unit"] * gen["count"]
    return str(text)


def armed(code: str, canary: Canary) -> str:
    """Point the payload's shell commands and host paths at the canary."""
    shell = f"cat {canary.file} > {canary.dir}/pwned"
    code = code.replace("['id']", repr(["sh", "-c", shell]))
    for cmd in ("'id'", "':'"):
        code = code.replace(cmd, repr(shell))
    code = code.replace("b'id'", repr(shell.encode()))
    for host_path in ("'/etc/passwd'", "'~/.ssh/id_rsa'", "'../../../../etc/passwd'"):
        code = code.replace(host_path, repr(str(canary.file)))
    return code.replace("rmtree('/tmp')", f"rmtree({str(canary.dir)!r})")


def load_cases(data_dir: Path) -> list[dict[str, Any]]:
    corpus = json.loads((data_dir / "security" / "python_sandbox_escapes.json").read_text())
    cases: list[dict[str, Any]] = corpus["cases"]
    return cases


def attack(dev: Python, code: str, canary: Canary) -> tuple[Outcome, Outcome, list[str]]:
    table = SyscallTable([dev])
    outcome = table.dispatch("python.run", {"code": code})
    after = table.dispatch("python.run", {"code": "print('still here')\n6 * 7"})
    problems = canary.intact(outcome.text)
    if after.status != "ok" or after.text != "still here\n42":
        problems.append(f"the next call failed: {after.text[:120]!r}")
    return outcome, after, problems


def test_every_corpus_case_is_refused_or_contained(data_dir: Path, canary: Canary) -> None:
    cases = load_cases(data_dir)
    dev = Python()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(
            lambda c: attack(dev, armed(payload_of(c), canary), canary), cases
        ))
    refused = contained = 0
    escaped: list[str] = []
    for case, (outcome, _, problems) in zip(cases, results, strict=True):
        by_limit = any(word in outcome.text for word in LIMIT_WORDS)
        if case["expected"] == "refuse" and (outcome.status != "fault" or by_limit):
            problems.append(f"expected a refusal, got {outcome.status}: {outcome.text[:160]!r}")
        if outcome.status == "error":
            problems.append(f"device error: {outcome.text[:160]!r}")
        if problems:
            escaped.append(f"{case['id']}: {'; '.join(problems)}")
        elif outcome.status == "fault" and not by_limit:
            refused += 1
        else:
            contained += 1
    print(f"\npython escape corpus: tried {len(cases)}, refused {refused}, "
          f"contained {contained}, escaped {len(escaped)}")
    assert not escaped, "\n".join(escaped)
    assert refused + contained == len(cases)


CPU = ("timed out", "CPU time")  # which of the two deadlines bites first depends on load
BOMBS: dict[str, tuple[str, str | tuple[str, ...]]] = {
    "infinite loop": ("while True:\n    pass", CPU),
    "C-level bigint": ("x = 10 ** (10 ** 9)", CPU),
    "memory bomb": ("s = 'A' * (10 ** 11)", "out of memory"),
    "memory growth": ("l = []\nwhile True:\n    l.append('x' * 10 ** 6)", "out of memory"),
    "output bomb": ("print('A' * 10 ** 7)", "printed more than"),
    "many prints": ("for i in range(10 ** 7):\n    print(i)", "printed more than"),
    "swallowed output bomb": (
        "for i in range(10 ** 5):\n    try:\n        print(i)\n    except BaseException:\n"
        "        pass", "printed more than"),
    "deep recursion": ("def f(n):\n    return f(n + 1)\nf(0)", "RecursionError"),
    "fork bomb": ("import os\nwhile True:\n    os.fork()", "not allowed"),
    "nested parens": ("x = " + "(" * 100000 + "1" + ")" * 100000, "SyntaxError"),
    "huge expression": ("1+" * 10**6 + "1", "too large or too deeply nested"),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_resource_bombs_are_contained_and_the_next_call_works(name: str, canary: Canary) -> None:
    code, expected = BOMBS[name]
    accepted = (expected,) if isinstance(expected, str) else expected
    dev = Python(timeout_s=3, cpu_s=2, max_code_chars=3_000_000)
    outcome, _, problems = attack(dev, code, canary)
    assert outcome.status == "fault", outcome.text[:200]
    assert any(word in outcome.text for word in accepted), outcome.text[:200]
    assert not problems, problems


def test_huge_program_is_refused_by_length_under_default_limits() -> None:
    out = SyscallTable([Python()]).dispatch("python.run", {"code": "1+" * 10**6 + "1"})
    assert out.status == "fault" and "write a shorter program" in out.text


WALL_PROBE = """
import json, os, socket, sys
sys.path.insert(0, {dir!r})
import _pyworker
walls = _pyworker._wall_in({{"cpu_s": 5, "memory_mb": 256, "isolate_network": True}})
seen = {{"walls": walls}}
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    seen["fork"] = "allowed"
except Exception as exc:
    seen["fork"] = repr(exc)
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(("127.0.0.1", {port}))
    seen["connect"] = "allowed"
except Exception as exc:
    seen["connect"] = repr(exc)
try:
    open({canary!r}).read()
    seen["read"] = "allowed"
except Exception as exc:
    seen["read"] = repr(exc)
print(json.dumps(seen))
"""


def test_os_walls_hold_even_without_restrictedpython(canary: Canary) -> None:
    """Run the worker's walls, then try fork, loopback connect and a file read directly."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        port = server.getsockname()[1]
        probe = WALL_PROBE.format(dir=str(Path(_pyworker.__file__).parent), port=port,
                                  canary=str(canary.file))
        proc = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True,
                              timeout=60, env={}, cwd=canary.dir)
    finally:
        server.close()
    seen = json.loads(proc.stdout)
    walls = seen["walls"]
    print(f"\nOS walls here: {walls}")
    if walls["nproc"]:
        assert seen["fork"] != "allowed"
    if walls["network"]:
        assert seen["connect"] != "allowed"
    if walls["user"] and os.geteuid() == 0:
        assert seen["read"] != "allowed"  # the canary is private to root
    if os.geteuid() == 0:  # as root every wall is available on Linux
        assert walls == {"network": True, "user": True, "nproc": True}
