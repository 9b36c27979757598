"""The chat dialect: how an instruction-tuned model wants its context and its instruction.

A base model continues a plain transcript and writes a call as a bare JSON line (the kernel's
own form, ``{"syscall": ..., "args": {...}}``). An instruction-tuned model with tool support
was trained on its *chat template* (the Jinja template stored in the GGUF): a system turn that
lists the tools, user and assistant turns, tool results in their own turns, and calls written
in the model's native form. For the Hermes/Qwen2.5 family that form is::

    <tool_call>
    {"name": "calculator.evaluate", "arguments": {"expression": "2 + 2"}}
    </tool_call>

and a reply without a call is plain text. :class:`ChatDialect` renders a process's context
through the template and turns the kernel's step schema into a llguidance grammar of exactly
that form: a call (the union of the callable syscalls, each one grounded as on the plain
path) **or** a plain-text reply, which is the ``answer`` syscall. What the model wrote is
translated back to the kernel's form (:meth:`ChatDialect.to_call`), so the trap, the policy
and the trace see the same calls on both paths.

Invariants:
- special tokens come only from the template: the template's control strings are marked in
  its source with a sentinel character, and the CPU tokenizes a marked control string as the
  control token and everything else as text (``split_specials``); text from pages is cleaned
  of the sentinel and of the vocabulary's marker strings (``<tool_call>``, ``<|im_end|>``...)
  before it is rendered, so a page cannot open a turn or forge a call;
- the rendering is append-only: a journal of ``n + 1`` pages renders as the journal of ``n``
  pages plus the new page's turn, for the template families this dialect accepts (measured
  by ``Decoding.reused_tokens``; see ``benchmarks/decode.py``);
- ``tojson`` in the template writes JSON as the grammar does (keys in the order written,
  ``", "`` and ``": "`` separators, no HTML escaping), so a call renders back into the same
  text the model decoded.

Neighbours: ``llmos.cpu.llama.LlamaCPU`` owns one dialect per chat model; the kernel's loader
renders a process's header and journal through ``llmos.memory.turns.ChatLayout``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from llmos.errors import UsageError

__all__ = ["ChatDialect", "dialect_for", "supports_tools"]

# the kernel's call form (the schema the kernel hands the CPU is a union of these objects)
SYSCALL, ARGS, ANSWER = "syscall", "args", "answer"
SENTINEL = "\x1e"  # marks a control string the template wrote (never kept in page text)
_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_JSON_FORM = {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", "}


def supports_tools(template: str | None) -> bool:
    """True when a chat template lists tools and asks for ``<tool_call>`` replies."""
    return bool(template) and "tools" in str(template) and _OPEN in str(template)


def dialect_for(llama: Any, lib: Any, name: str) -> ChatDialect:
    """The dialect of a loaded ``llama_cpp.Llama`` from its template and vocabulary.

    Raises:
        UsageError: the model has no template that asks for ``<tool_call>`` replies, or those
            markers are not single tokens of its vocabulary.
    """
    template = str(llama.metadata.get("tokenizer.chat_template") or "")
    if _OPEN not in template:
        raise UsageError(f"{name}: chat=True needs a chat template that asks for <tool_call> "
                         "replies (Qwen2.5, Hermes); this model has none, use chat=False",
                         code="chat-template")
    vocab = lib.llama_model_get_vocab(llama.model)
    controls: list[str] = []
    markers: list[str] = []
    for token in range(int(llama.n_vocab())):
        attr = int(lib.llama_vocab_get_attr(vocab, token))
        if attr & (lib.LLAMA_TOKEN_ATTR_CONTROL | lib.LLAMA_TOKEN_ATTR_USER_DEFINED):
            piece = llama.detokenize([token], special=True).decode("utf-8", "replace")
            (controls if attr & lib.LLAMA_TOKEN_ATTR_CONTROL else markers).append(piece)
    ids = [llama.tokenize(m.encode(), add_bos=False, special=True) for m in (_OPEN, _CLOSE)]
    if any(len(i) != 1 for i in ids):
        raise UsageError(f"{name}: <tool_call> is not one token in this vocabulary; use "
                         "chat=False", code="chat-template")
    markers = [m for m in markers if m.startswith("<") and m.endswith(">")]
    bos = int(llama.token_bos()) if lib.llama_vocab_get_add_bos(vocab) else None
    return ChatDialect(template, controls=controls, markers=markers,
                       call_tokens=(int(ids[0][0]), int(ids[1][0])), bos=bos)


class ChatDialect:
    """Render through a GGUF chat template; decode in the model's native call form.

    Args:
        template: the Jinja chat template (from the GGUF metadata).
        controls: the vocabulary's control-token strings (``<|im_start|>``...): the only
            strings tokenized as special tokens, and only where the template wrote them.
        markers: other marker strings a page must not contain verbatim (``<tool_call>``...).
        call_tokens: the token ids of ``<tool_call>`` and ``</tool_call>``.
        bos: the token a prompt starts with, if the model adds one.

    Raises:
        UsageError: the template does not render (a syntax error, or a template this dialect
            does not understand).
    """

    def __init__(
        self,
        template: str,
        *,
        controls: Iterable[str],
        markers: Iterable[str] = (),
        call_tokens: tuple[int, int],
        bos: int | None = None,
    ) -> None:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.controls = sorted({c for c in controls if len(c) > 1}, key=len, reverse=True)
        marked = template
        for c in self.controls:
            marked = marked.replace(c, SENTINEL + c)
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        try:
            self._template = env.from_string(marked)
        except Exception as exc:  # jinja2's TemplateSyntaxError and friends
            raise UsageError(f"the model's chat template does not compile: {exc}",
                             code="chat-template") from exc
        unsafe = sorted({*self.controls, *(m for m in markers if len(m) > 1)}, key=len,
                        reverse=True)
        self._unsafe = re.compile("|".join(re.escape(m) for m in unsafe)) if unsafe else None
        self._specials = re.compile(
            "(" + "|".join(re.escape(SENTINEL + c) for c in self.controls) + ")"
        ) if self.controls else None
        self.call_tokens = call_tokens
        self.bos = bos

    def tokenize(self, llama: Any, prompt: str, *, bos: bool) -> list[int]:
        """``prompt`` as tokens: control tokens where the template wrote them, text elsewhere."""
        out = [self.bos] if bos and self.bos is not None else []
        for piece, special in self.split_specials(prompt):
            out += [int(t) for t in llama.tokenize(piece.encode(), add_bos=False,
                                                   special=special)]
        return out

    # -- rendering ------------------------------------------------------------------------
    def clean(self, text: str) -> str:
        """Page text made safe to render: no sentinel, no marker string kept whole."""
        text = text.replace(SENTINEL, "")
        if self._unsafe is None:
            return text
        # a zero-width space after the opening character: the string reads the same but is
        # no longer the marker (the tokenizer sees "<" and "|im_end|>")
        return self._unsafe.sub(lambda m: m.group()[0] + "\u200b" + m.group()[1:], text)

    def render(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
        *, prompt: bool,
    ) -> str:
        """Render messages (already cleaned) through the template."""
        try:
            return str(self._template.render(
                messages=list(messages), tools=list(tools) if tools else None,
                add_generation_prompt=prompt, bos_token="", eos_token="",
            ))
        except Exception as exc:
            raise UsageError(f"the model's chat template failed to render: {exc}",
                             code="chat-template") from exc

    def split_specials(self, prompt: str) -> list[tuple[str, bool]]:
        """``prompt`` as (text, is_control) pieces: a control string counts only if marked."""
        if self._specials is None:
            return [(prompt.replace(SENTINEL, ""), False)]
        pieces: list[tuple[str, bool]] = []
        for i, part in enumerate(self._specials.split(prompt)):
            if i % 2:
                pieces.append((part[len(SENTINEL):], True))
            elif part:
                pieces.append((part.replace(SENTINEL, ""), False))
        return pieces

    # -- decoding ---------------------------------------------------------------------------
    def grammar(self, schema: Mapping[str, Any]) -> str:
        """The lark grammar of one step: a native call from the schema's union, or a reply."""
        calls: list[dict[str, Any]] = []
        answer: Mapping[str, Any] | None = None
        for branch in schema.get("anyOf", [schema]):
            props = branch.get("properties", {})
            name = props.get(SYSCALL, {}).get("const")
            args = props.get(ARGS, {"type": "object"})
            if name == ANSWER:
                answer = args.get("properties", {}).get("text", {})
                continue
            calls.append({
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": args},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            })
        rules = []
        if calls:
            union = {"anyOf": calls, "x-guidance": dict(_JSON_FORM)}
            opened, closed = self.call_tokens
            # the native form, or the bare JSON object small models often write instead (the
            # journal renders every call back in the native form, which is what they read)
            rules.append(f'call: <[{opened}]> "\\n" body "\\n" <[{closed}]> | body\n'
                         f"body: %json {json.dumps(union)}")
        if answer is not None:
            rules.append(f"answer: REPLY\nREPLY: {_reply_regex(answer)}")
        starts = [r.split(":")[0] for r in rules]
        if not starts:
            raise UsageError("the step schema offers no syscall", code="schema")
        return "start: " + " | ".join(starts) + "\n" + "\n".join(rules) + "\n"

    def to_call(self, text: str, stop: Literal["grammar", "length", "eos"]) -> str:
        """What the model wrote, in the kernel's call form (a cut reply stays cut)."""
        body = text.strip()
        if body.startswith((_OPEN, "{")):
            inner = body.removeprefix(_OPEN).removesuffix(_CLOSE).strip()
            try:
                value = json.loads(inner)
            except json.JSONDecodeError:  # cut at the token limit: the kernel faults it
                return json.dumps({SYSCALL: "?", ARGS: inner}, ensure_ascii=False)
            return json.dumps({SYSCALL: value.get("name"), ARGS: value.get("arguments", {})},
                              ensure_ascii=False)
        whole = json.dumps({SYSCALL: ANSWER, ARGS: {"text": body}}, ensure_ascii=False)
        return whole.removesuffix('"}}') if stop == "length" else whole


def _reply_regex(text: Mapping[str, Any]) -> str:
    """The lark terminal of a plain-text reply: not empty, not a call (which opens with
    ``<tool_call>`` or ``{``), grounded like ``text``."""
    first = r"/[^<{\s\x00-\x1f][^\x00-\x09\x0b-\x1f]*/"
    pattern = text.get("pattern")
    if not isinstance(pattern, str):
        return first
    core = pattern.removeprefix("^").removesuffix("$").replace("/", "\\/")
    return f"{first} & /{core}/"


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _raise(message: str) -> None:
    raise UsageError(f"the model's chat template refused the conversation: {message}",
                     code="chat-template")
