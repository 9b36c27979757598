"""The security monitor: sensitive calls under taint, and the egress filter on answers.

Two walls that hold whatever the model was told by a page it read (DESIGN §6):

- **taint**: while an untrusted page (text from a web page or a file) is resident, a syscall
  marked ``sensitive`` (writes, code execution, egress) runs only if the policy allows it or
  the approval callback says yes. The model cannot be talked out of this: it is checked in
  the kernel, after decoding, on every call.
- **egress**: the final answer is filtered: markdown images are dropped unless their host is
  allowed, and links to hosts that are neither allowed nor named in a trusted page keep their
  text but lose their target, so an injected page cannot exfiltrate data through a URL the
  user's client would fetch.

Grounded arguments (``llmos.kernel.ground``) are the third wall: a sensitive call's URL or path
must appear in a trusted page.

Neighbours: the instruction cycle (``llmos.kernel.cycle``) asks ``allow_call`` before each
dispatch and ``egress`` before returning an answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from llmos.memory.page import Page
from llmos.peripherals.base import Approve, SyscallSpec

__all__ = ["Policy"]

_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_BARE_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_HOST_IN_TEXT = re.compile(r"https?://([^\s/:?#<>\"')\]]+)")



@dataclass(frozen=True)
class Policy:
    """What a process may do while untrusted text is resident, and what its answers may carry.

    Attributes:
        sensitive_with_untrusted: let sensitive calls run even while untrusted pages are
            resident (off by default).
        approve: asked ``approve(syscall, args)`` for a sensitive call under taint; True runs
            it. Without it, such calls are denied.
        allow_hosts: hosts that answers may link to, beside those named in trusted pages.
    """

    sensitive_with_untrusted: bool = False
    approve: Approve | None = None
    allow_hosts: frozenset[str] = field(default_factory=frozenset)

    def allow_call(self, spec: SyscallSpec, args: Mapping[str, Any], pages: Iterable[Page]) -> str:
        """Return "" if the call may run, else the reason it may not (for the model)."""
        if not spec.sensitive or self.sensitive_with_untrusted:
            return ""
        tainted = [p.source for p in pages if not p.trusted]
        if not tainted:
            return ""
        if self.approve is not None and self.approve(spec.name, dict(args)):
            return ""
        return (
            f"denied: {spec.name!r} is a sensitive call and untrusted text from "
            f"{tainted[-1]} is in context; answer the user instead, or ask them to approve"
        )

    def egress(self, text: str, pages: Iterable[Page]) -> tuple[str, bool]:
        """Filter an answer; returns the text and whether anything was removed."""
        allowed = set(self.allow_hosts)
        for p in pages:
            if p.trusted and p.kind in ("message", "note"):
                allowed.update(h.lower() for h in _HOST_IN_TEXT.findall(p.text))

        def host_ok(url: str) -> bool:
            host = (urlsplit(url).hostname or "").lower()
            return bool(host) and host in allowed

        changed = False

        def image(m: re.Match[str]) -> str:
            nonlocal changed
            if host_ok(m.group(2)):
                return m.group(0)
            changed = True
            return f"[image removed: {m.group(1)}]" if m.group(1) else "[image removed]"

        def link(m: re.Match[str]) -> str:
            nonlocal changed
            if host_ok(m.group(2)):
                return m.group(0)
            changed = True
            return m.group(1)

        def bare(m: re.Match[str]) -> str:
            nonlocal changed
            if host_ok(m.group(0)):
                return m.group(0)
            changed = True
            return "[link removed]"

        out = _IMAGE.sub(image, text)
        out = _LINK.sub(link, out)
        out = _BARE_URL.sub(bare, out)
        return out, changed
