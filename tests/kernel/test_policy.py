"""The security monitor's call check on its own: taint, the approval callback, the opt-out.

``tainted`` is what the instruction cycle passes: untrusted text was read in this turn
(``RAM.tainted``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from llmos.kernel.policy import Policy
from llmos.peripherals.base import SyscallSpec


class _Args(BaseModel):
    path: str


WRITE = SyscallSpec(name="fs.write", method="write", args=_Args, doc="", sensitive=True)
READ = SyscallSpec(name="fs.read", method="read", args=_Args, doc="")
TRUSTED = {"tainted": False}
TAINTED = {"tainted": True}


def test_harmless_calls_and_clean_context_always_pass() -> None:
    policy = Policy()
    assert policy.allow_call(READ, {"path": "a"}, **TAINTED) == ""
    assert policy.allow_call(WRITE, {"path": "a"}, **TRUSTED) == ""


def test_a_sensitive_call_under_taint_is_denied_without_quoting_outside_text() -> None:
    denial = Policy().allow_call(WRITE, {"path": "a"}, **TAINTED)
    assert denial.startswith("denied: 'fs.write' is a sensitive call")
    # a denial is a trusted kernel message: it names no source (a URL an attacker chose)
    assert "untrusted text" in denial and "http" not in denial


def test_the_approval_callback_decides_and_sees_the_call() -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    def approve(name: str, args: Any) -> bool:
        asked.append((name, dict(args)))
        return args["path"] == "ok.txt"

    policy = Policy(approve=approve)
    assert policy.allow_call(WRITE, {"path": "ok.txt"}, **TAINTED) == ""
    assert policy.allow_call(WRITE, {"path": "secrets"}, **TAINTED).startswith("denied")
    assert asked == [("fs.write", {"path": "ok.txt"}), ("fs.write", {"path": "secrets"})]
    assert policy.allow_call(WRITE, {"path": "x"}, **TRUSTED) == ""
    assert len(asked) == 2  # not asked without taint


def test_the_opt_out_lets_sensitive_calls_run_under_taint() -> None:
    assert Policy(sensitive_with_untrusted=True).allow_call(WRITE, {"path": "a"}, **TAINTED) == ""
