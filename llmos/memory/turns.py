"""Chat turns: how a process's RAM renders on an instruction-tuned model.

On a chat model (``llmos.cpu.chat.ChatDialect``) the header is the template's system turn with
the syscall table as the model's native tools block, plus worked examples as earlier turns;
the journal maps onto turns: a user message is a user turn, a call an assistant turn with a
native tool call (``answer`` is the assistant's plain reply), a result a tool turn. Untrusted
pages keep the plain path's spotlighting (``render_page``) inside their turn, and summaries,
notes and recalled pages keep their labels, so what the model may trust reads the same on
both paths.

Invariant: the render is the GGUF template's own output for the whole conversation, and it is
append-only for the templates the dialect accepts (a new page adds its turn at the end).

Neighbours: ``llmos.memory.ram.RAM`` holds one layout per process; ``llmos.kernel.boot``
builds it from the CPU's dialect.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from llmos.memory.page import Page
from llmos.memory.ram import render_page

__all__ = ["ChatLayout", "Dialect", "Example"]

SYSCALL, ARGS, ANSWER = "syscall", "args", "answer"  # the kernel's call form


class Dialect(Protocol):
    """What a layout needs from the CPU's chat dialect."""

    def clean(self, text: str) -> str:
        """Page text made safe to render inside a turn."""
        ...

    def render(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
        *, prompt: bool,
    ) -> str:
        """Render messages through the template."""
        ...


class Example(Protocol):
    """A worked example: a question, calls with their results, the answer."""

    @property
    def question(self) -> str: ...

    @property
    def calls(self) -> Sequence[tuple[str, Mapping[str, Any], str]]: ...

    @property
    def answer(self) -> str: ...


class ChatLayout:
    """How one process's RAM renders on a chat model: system turn with tools, then turns."""

    def __init__(
        self, dialect: Dialect, system: str, tools: Sequence[Mapping[str, Any]],
        examples: Sequence[Example] = (), *, key: bytes,
    ) -> None:
        self._dialect = dialect
        self._key = key  # the kernel's spotlight key: tool turns carry the same tags
        self._system = {"role": "system", "content": dialect.clean(system)}
        self._tools = [dict(t) for t in tools]
        self._base = dialect.render([self._system], self._tools, prompt=False)
        shots: list[dict[str, Any]] = []
        for ex in examples:
            shots.append({"role": "user", "content": dialect.clean(ex.question)})
            for name, args, result in ex.calls:
                shots.append(_call_turn(name, dict(args)))
                shots.append({"role": "tool", "content": dialect.clean(result)})
            shots.append({"role": "assistant", "content": dialect.clean(ex.answer)})
        self._shots = shots
        self.header = dialect.render([self._system, *shots], self._tools, prompt=False)

    def _journal(self, pages: Sequence[Page], *, prompt: bool) -> str:
        messages = [self._system, *self._shots, *(self._message(p) for p in pages)]
        return self._dialect.render(messages, self._tools, prompt=prompt)[len(self.header):]

    def page(self, page: Page) -> str:
        """One page's turn, alone (what its token count is measured on)."""
        return self._journal([page], prompt=False)

    def render(self, header: str, pages: Sequence[Page]) -> str:
        """The whole prompt, ending where the model writes its next turn."""
        return header + self._journal(pages, prompt=True)

    def _message(self, page: Page) -> dict[str, Any]:
        clean = self._dialect.clean
        if page.kind == "call":
            try:
                value = json.loads(page.text)
                name, args = value[SYSCALL], value[ARGS]
            except (json.JSONDecodeError, KeyError, TypeError):
                return {"role": "assistant", "content": clean(page.text)}
            if name == ANSWER and isinstance(args, dict):
                return {"role": "assistant", "content": clean(str(args.get("text", "")))}
            return _call_turn(str(name), args if isinstance(args, dict) else {})
        if page.kind == "result" and not page.paged_in:
            text = page.text if page.trusted else render_page(page, key=self._key).strip()
            return {"role": "tool", "content": clean(text)}
        if page.kind == "message" and page.role == "user" and not page.paged_in and page.trusted:
            return {"role": "user", "content": clean(page.text)}
        # summaries, notes, recalled pages and untrusted messages: labelled as on the plain path
        return {"role": "user", "content": clean(render_page(page, key=self._key).strip())}


def _call_turn(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": "",
            "tool_calls": [{"type": "function", "function": {"name": name, "arguments": args}}]}
