"""The trace: typed events of what a run did, in order.

Every event is a frozen pydantic model with a ``type`` tag, so a trace serialises to JSON and
back (``llmos run --json``) and a program can match on events without parsing text. Events
are appended as they happen; nothing rewrites a trace.

This module sits below every layer (it imports nothing of llmos), so each may record: the
instruction cycle (``llmos.kernel.cycle``) records decode, call, fault and answer events, the
pager (``llmos.memory.pager``) page events, the scheduler switch events.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Answered",
    "Called",
    "Decoded",
    "Event",
    "Faulted",
    "Paged",
    "Scheduled",
    "Voted",
]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    pid: int = 0
    step: int = 0


class Decoded(_Event):
    """The CPU decoded one instruction; token counts say what it cost."""

    type: Literal["decoded"] = "decoded"
    text: str
    prompt_tokens: int
    reused_tokens: int
    prefilled_tokens: int
    decoded_tokens: int
    forced_tokens: int
    seconds: float


class Called(_Event):
    """A syscall was dispatched to a peripheral and returned (``status`` says how)."""

    type: Literal["called"] = "called"
    syscall: str
    args: dict[str, Any]
    result: str
    status: Literal["ok", "fault", "error", "denied"]
    source: str
    trusted: bool = True
    seconds: float = 0.0


class Faulted(_Event):
    """The model's output could not become a call (it reads ``message`` next step)."""

    type: Literal["faulted"] = "faulted"
    message: str
    text: str = ""


class Answered(_Event):
    """The process called ``answer``; ``text`` is what the user gets (after the egress filter)."""

    type: Literal["answered"] = "answered"
    text: str
    filtered: bool = False


class Paged(_Event):
    """The pager moved pages between RAM and disk."""

    type: Literal["paged"] = "paged"
    direction: Literal["in", "out"]
    page_ids: list[str]
    tokens: int
    reason: str = ""
    resident_tokens: int = 0


class Scheduled(_Event):
    """The scheduler changed a process's state (switch in/out, wait, wake, KV save/restore)."""

    type: Literal["scheduled"] = "scheduled"
    what: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Voted(_Event):
    """System 2: the CPU decoded several candidates for one step and the kernel chose by vote.

    ``candidates`` are the texts in decoding order (the greedy one first); ``chosen`` indexes
    the one the step went on with; ``votes`` is how many candidates made the same syscall
    (and, for a device call, with the same arguments).
    """

    type: Literal["voted"] = "voted"
    candidates: list[str]
    chosen: int
    votes: int


Event = Annotated[
    Decoded | Called | Faulted | Answered | Paged | Scheduled | Voted,
    Field(discriminator="type"),
]
