"""A page: the unit the pager moves between RAM (the context window) and disk (the store).

Every page says who wrote it (``source``: ``user``, ``model``, a peripheral's name, or the URL
or path a device read) and whether it is trusted. Pages from outside stay untrusted on disk
and when paged back in. ``tokens`` is measured by the CPU's own tokenizer on the page's
rendered text, never guessed.

Neighbours: ``llmos.memory.ram`` holds resident pages under a token budget;
``llmos.memory.disk`` stores evicted pages with these fields as metadata.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Page", "PageKind", "Trust"]

PageKind = Literal["message", "call", "result", "summary", "note"]
Trust = Literal["trusted", "untrusted"]


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


class Page(BaseModel):
    """One unit of memory.

    Attributes:
        id: unique id (12 hex characters).
        pid: the process it belongs to.
        kind: message, call, result, summary or note.
        role: who speaks in the transcript: ``user``, ``model`` (a call) or ``device``.
        text: the content, as the model reads it.
        tokens: tokens ``text`` takes when rendered, from the CPU's tokenizer (0 = not yet
            measured).
        source: provenance: ``user``, ``model``, a peripheral's name, or a URL or path.
        trust: ``untrusted`` for anything read from outside the process.
        pinned: pinned pages are never evicted.
        created: creation time (seconds since the epoch).
        last_used: last time it was rendered or paged in.
        group: pages that share a group (a call and its result) are evicted together.
        paged_in: True when the pager brought it back from disk.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=_new_id)
    pid: int = 0
    kind: PageKind = "message"
    role: Literal["user", "model", "device", "system"] = "user"
    text: str
    tokens: int = 0
    source: str = "user"
    trust: Trust = "trusted"
    pinned: bool = False
    created: float = Field(default_factory=time.time)
    last_used: float = Field(default_factory=time.time)
    group: str | None = None
    paged_in: bool = False

    @property
    def trusted(self) -> bool:
        """True when the page came from the user, the model or a trusted device."""
        return self.trust == "trusted"

    def head(self, chars: int = 80) -> str:
        """The page's text on one line, cut to ``chars`` (a summary without its id list)."""
        text = " ".join(self.text.split())
        if self.kind == "summary" and text.startswith("(paged out"):
            text = text.split(") ", 1)[-1]
        return text if len(text) <= chars else text[: chars - 1] + "…"
