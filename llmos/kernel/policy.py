"""The security monitor: sensitive calls under taint, and the egress filter on answers.

Walls that hold whatever the model was told by a page it read (DESIGN §6):

- **taint**: once untrusted text (anything a device brought in, see ``llmos.kernel.syscall``)
  has been in RAM during a turn, a syscall marked ``sensitive`` (writes, code execution,
  egress) runs only if the policy allows it or the approval callback says yes. Taint is sticky
  for the rest of the turn, even if the untrusted page leaves RAM: the model already read it.
  The model cannot be talked out of this: it is checked in the kernel, after decoding, on every
  call. A denial quotes nothing from outside.
- **egress**: the final answer passes ``llmos.kernel.egress``: links and images survive only to
  hosts the user named in their messages, the program names, or ``allow_hosts`` lists; raw
  HTML and every other way to make a client fetch a URL is dropped. Pages the model wrote
  (notes, summaries) and device output never widen the list.

Grounded arguments (``llmos.kernel.ground``) are the third wall: a sensitive call's URL or path
must be written in the user's messages or the program (or, if ``ground_sources`` names it, in
a trusted result of that device), never only in device output.

``Policy(monitor=False)`` switches all three off; it exists to measure what they buy
(``benchmarks/injection.py``), not for use.

Neighbours: the instruction cycle (``llmos.kernel.cycle``) asks ``allow_call`` before each
dispatch and ``egress`` before returning an answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmos.kernel.egress import filter_answer, hosts_in
from llmos.memory.page import Page
from llmos.peripherals.base import Approve, SyscallSpec

__all__ = ["Policy"]



@dataclass(frozen=True)
class Policy:
    """What a process may do after it read untrusted text, and what its answers may carry.

    Attributes:
        sensitive_with_untrusted: let sensitive calls run even after untrusted text was read
            (off by default).
        approve: asked ``approve(syscall, args)`` for a sensitive call under taint; True runs
            it. Without it, such calls are denied.
        allow_hosts: hosts that answers may link to, beside those the user and the program
            name.
        ground_sources: devices whose *trusted* results (a pure syscall on trusted arguments)
            may also supply targets of sensitive calls; by default only the user's messages
            and the program do.
        monitor: False switches taint, egress and target grounding off (for measurement).
    """

    sensitive_with_untrusted: bool = False
    approve: Approve | None = None
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    ground_sources: frozenset[str] = field(default_factory=frozenset)
    monitor: bool = True

    def allow_call(self, spec: SyscallSpec, args: Mapping[str, Any], *, tainted: bool) -> str:
        """Return "" if the call may run, else the reason it may not (for the model).

        ``tainted``: untrusted text has been in RAM during this turn.
        """
        if not (self.monitor and spec.sensitive and tainted) or self.sensitive_with_untrusted:
            return ""
        if self.approve is not None and self.approve(spec.name, dict(args)):
            return ""
        return (
            f"denied: {spec.name!r} is a sensitive call and you have read untrusted text in "
            "this turn; answer the user instead, or ask them to approve"
        )

    def egress(self, text: str, pages: Iterable[Page], *, program: str = "") -> tuple[str, bool]:
        """Filter an answer; returns the text and whether anything was removed."""
        if not self.monitor:
            return text, False
        allowed = {h.lower() for h in self.allow_hosts} | hosts_in(program)
        for p in pages:
            if _users_words(p):
                allowed |= hosts_in(p.text)
        return filter_answer(text, allowed)


def _users_words(page: Page) -> bool:
    """A message the user wrote (this turn's or a recalled one), not a page a device or the
    model wrote."""
    return page.kind == "message" and page.role == "user" and page.trusted
