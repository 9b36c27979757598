"""Trap: the model's text becomes a call, or a Fault the model reads next step.

Under a grammar (``LlamaCPU``) the text is always one JSON object of the syscall union, but a
backend without grammar support (a server, a scripted test CPU) may write anything, so this is
the single place where text is parsed, and it trusts nothing: size, nesting, shape and types
are checked before the syscall table validates the arguments against their pydantic model.

Neighbours: the CPU produces the text; ``llmos.kernel.syscall`` validates and dispatches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llmos.errors import Fault
from llmos.kernel.syscall import ANSWER, format_call
from llmos.memory.page import Page

__all__ = ["FAULT", "Call", "cut_answer", "decode_call", "echoes_fault"]

FAULT = "Fault: "  # how a fault reads in RAM (kernel, policy and device faults alike)
_ECHO_CHARS = 40  # an answer holding this much of a fault's message is repeating it

_MAX_CALL_CHARS = 64_000
_SHAPE = 'write one JSON object: {"syscall": "<name>", "args": {...}}'
# how an answer's text starts in the canonical form: '{"syscall": "answer", "args": {"text": "'
_ANSWER_OPENING = format_call(ANSWER, {"text": ""}).removesuffix('"}}')


@dataclass(frozen=True)
class Call:
    """One decoded instruction: a syscall name and its raw (not yet validated) arguments."""

    name: str
    args: dict[str, Any]


def decode_call(text: str) -> Call:
    """Parse ``text`` as one call; raise :class:`Fault` saying how to write it otherwise."""
    body = text.strip()
    if not body:
        raise Fault(f"empty instruction; {_SHAPE}")
    if len(body) > _MAX_CALL_CHARS:
        raise Fault(f"instruction of {len(body)} characters is too long; {_SHAPE}")
    try:
        value, end = json.JSONDecoder().raw_decode(body)
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = getattr(exc, "msg", "too deeply nested")
        raise Fault(f"malformed instruction ({msg}); {_SHAPE}") from None
    if body[end:].strip():
        raise Fault(f"text after the JSON object; {_SHAPE}")
    if not isinstance(value, dict):
        raise Fault(f"the instruction is a {type(value).__name__}, not an object; {_SHAPE}")
    name = value.get("syscall")
    args = value.get("args", {})
    extra = set(value) - {"syscall", "args"}
    if not isinstance(name, str) or not name:
        raise Fault(f'missing "syscall" name; {_SHAPE}')
    if not isinstance(args, dict):
        raise Fault(f'"args" must be an object; {_SHAPE}')
    if extra:
        raise Fault(f"unexpected keys {sorted(extra)}; {_SHAPE}")
    return Call(name, args)


def cut_answer(text: str) -> str | None:
    """The text of an answer that ran out of tokens mid-string, or None if ``text`` is not one.

    An answer cut at the token budget still says what the model meant up to that point, so it
    is kept (with an ellipsis) rather than thrown away and written again from the start.
    """
    if not text.startswith(_ANSWER_OPENING):
        return None
    partial = text[len(_ANSWER_OPENING) :]
    for drop in range(7):  # a cut may split an escape: "\" or "\u00e"
        body = partial[: len(partial) - drop]
        try:
            value = json.loads(f'"{body}"')
        except json.JSONDecodeError:
            continue
        if isinstance(value, str) and value.strip():
            return value.rstrip() + "…"
        return None
    return None


def echoes_fault(answer: str, pages: Iterable[Page]) -> bool:
    """True when ``answer`` passes a fault off as the answer: it reads as a fault, or it
    repeats the message of a fault in RAM (a small model copies the last thing it read)."""
    text = answer.strip()
    if text.lower().startswith(FAULT.strip().lower()):
        return True
    for page in pages:
        if page.kind == "result" and page.text.startswith(FAULT):
            message = page.text[len(FAULT):].strip()[:_ECHO_CHARS]
            if len(message) >= 12 and message in text:
                return True
    return False
