"""The decoding grammar: which tokens the CPU may write next, from a JSON schema.

A :class:`Grammar` wraps one model's vocabulary for llguidance (the structured-output engine
that llama.cpp and vLLM use). It turns a JSON schema into an ``LLMatcher`` and, at every
decoding step, into a boolean mask over the vocabulary: True where the token keeps the text a
valid prefix of some JSON value that satisfies the schema. Where the grammar leaves only one
way forward (``{"syscall": "``, field names, closing braces), ``forced()`` returns those tokens
so the CPU can evaluate them in one batch without sampling (fast-forward).

Invariants:
- the llguidance tokenizer is built once per model (it walks the whole vocabulary, ~2 s);
  grammars are compiled once per distinct schema and reused (a matcher is reset per call);
- control, unused and non-text user-defined tokens (gemma's ``<start_of_image>``,
  ``[multimodal]``, ``<eos>`` inside a string) are never allowed, whatever the grammar says,
  except the end-of-text token once the grammar accepts; :attr:`Grammar.text_tokens` is the
  same ban for free text, with every end-of-generation token allowed;
- masks are fresh arrays; the caller may keep them.

Neighbours: ``llmos.cpu.llama.LlamaCPU`` owns one Grammar and drives the matcher while it
samples; ``llmos.kernel`` supplies the schema (the union of the syscalls a process may call).
"""

from __future__ import annotations

import ctypes
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from llmos.errors import CPUError, UsageError

__all__ = ["Grammar", "Mask", "sample", "violation"]

Mask = npt.NDArray[np.bool_]

_CACHE_SIZE = 32  # distinct schemas kept compiled; a kernel uses a handful
_VALIDATORS: OrderedDict[str, Any] = OrderedDict()  # schema JSON -> jsonschema validator


def violation(text: str, schema: Mapping[str, Any]) -> str | None:
    """Why ``text`` is not one JSON value valid for ``schema``, or None when it is.

    For text no grammar vouched for (a server that does not constrain decoding): the check a
    grammar makes while decoding, made afterwards. Keys llguidance reads (``x-guidance``) are
    ignored; patterns are matched as Python regexes, as the grammars here are written.
    """
    import jsonschema

    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return f"not one JSON value ({getattr(exc, 'msg', 'too deeply nested')})"
    key = json.dumps(schema, sort_keys=True)
    validator = _VALIDATORS.get(key)
    if validator is None:
        validator = jsonschema.Draft202012Validator(dict(schema))
        _VALIDATORS[key] = validator
        if len(_VALIDATORS) > _CACHE_SIZE:
            _VALIDATORS.popitem(last=False)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the call"
    return f"{where}: {error.message[:300]}"


class Grammar:
    """One model's vocabulary as llguidance sees it, plus compiled schemas.

    Args:
        llama: a loaded ``llama_cpp.Llama``; only its vocabulary is read.
        separators: the item and key separators the JSON must use (compact forms are forced,
            so they cost no sampling). Match how the prompts render JSON.
    """

    def __init__(self, llama: Any, *, separators: tuple[str, str] = (", ", ": ")) -> None:
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self._separators = separators
        eog = [t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)]
        self.eos = int(llama_cpp.llama_vocab_eos(vocab))
        self.eog = frozenset(eog)
        self.tokenizer, banned, pieces = _read_vocab(llama_cpp, vocab, self.n_vocab, self.eos)
        self._grammar_ok = ~banned  # the grammar's own mask decides about EOS
        self._grammar_ok[self.eos] = True
        text_ok = ~banned
        text_ok[eog] = True
        self.text_tokens: Mask = text_ok
        # tokens that close a JSON string: where a looping string may be ended
        self.closers: Mask = np.array([p.startswith(b'"') for p in pieces]) & ~banned
        self._bitmask = np.zeros((self.tokenizer.vocab_size + 31) // 32, dtype=np.int32)
        self._compiled: OrderedDict[str, Any] = OrderedDict()

    def allow(self, tokens: Iterable[int]) -> None:
        """Let grammars use these marker tokens (a chat model's ``<tool_call>``), which the
        text ban would otherwise keep out; only where a grammar names them by id."""
        for token in tokens:
            self._grammar_ok[int(token)] = True

    def matcher(self, schema: Mapping[str, Any] | str) -> Any:
        """Return an ``LLMatcher`` for ``schema`` (a JSON schema, or a lark grammar's text),
        at its start state.

        Raises:
            UsageError: the schema is not valid JSON or uses keywords llguidance cannot compile.
        """
        import llguidance

        # key order matters: properties are written in it
        key = schema if isinstance(schema, str) else json.dumps(schema)
        matcher = self._compiled.get(key)
        if matcher is not None:
            self._compiled.move_to_end(key)
            # A matcher that hit an error stays in it; such a one is compiled afresh.
            if matcher.reset() and not matcher.is_error():
                return matcher
            del self._compiled[key]
        try:
            grammar = llguidance.LLMatcher.grammar_from_lark(key) if isinstance(
                schema, str
            ) else llguidance.LLMatcher.grammar_from_json_schema(
                key,
                defaults={
                    "whitespace_flexible": False,
                    "item_separator": self._separators[0],
                    "key_separator": self._separators[1],
                },
            )
        except ValueError as exc:
            raise UsageError(
                f"the schema cannot be compiled to a grammar: {exc}", code="schema"
            ) from exc
        matcher = llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise UsageError(
                f"the schema cannot be compiled to a grammar: {matcher.get_error()}; "
                "use the JSON-schema subset pydantic emits (no 'not', no remote $ref)",
                code="schema",
            )
        self._compiled[key] = matcher
        if len(self._compiled) > _CACHE_SIZE:
            self._compiled.popitem(last=False)
        return matcher

    def allowed(self, matcher: Any) -> Mask:
        """The tokens the grammar allows next, minus the banned special tokens.

        Raises:
            CPUError: the matcher is in an error state, or nothing at all is allowed.
        """
        from llguidance.numpy import fill_next_token_bitmask

        fill_next_token_bitmask(matcher, self._bitmask.reshape(1, -1))
        if matcher.is_error():
            raise CPUError(f"the grammar failed while decoding: {matcher.get_error()}")
        bits = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little")
        mask: Mask = bits[: self.n_vocab].astype(np.bool_) & self._grammar_ok
        if not mask.any():
            raise CPUError(
                "the grammar allows no token here (a dead end in the schema); "
                "simplify the schema or report it as a bug"
            )
        return mask

    def forced(self, matcher: Any) -> list[int]:
        """Consume and return the tokens the grammar forces next (possibly none)."""
        tokens = [int(t) for t in matcher.compute_ff_tokens()]
        if tokens and not matcher.consume_tokens(tokens):
            raise CPUError(f"the grammar rejected its own forced tokens: {matcher.get_error()}")
        return tokens

    def accept(self, matcher: Any, token: int) -> None:
        """Advance ``matcher`` by one sampled ``token`` (which its mask allowed)."""
        if not matcher.consume_token(token):
            raise CPUError(f"the grammar rejected token {token}: {matcher.get_error()}")


def _read_vocab(
    llama_cpp: Any, vocab: Any, n_vocab: int, eos: int
) -> tuple[Any, Mask, list[bytes]]:
    """Build the llguidance tokenizer, the banned-token mask and the token pieces in one pass.

    This is ``llguidance.llamacpp.lltokenizer_from_vocab`` on llama.cpp's current (not
    deprecated) vocabulary calls: control tokens, and user-defined ``<...>`` markers, get the
    ``0xff`` prefix that makes llguidance treat them as special.
    """
    import llguidance

    control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
    user = llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    ban_bits = control | llama_cpp.LLAMA_TOKEN_ATTR_UNUSED | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
    size = 16 * 1024
    buf = ctypes.create_string_buffer(size + 1)
    pieces: list[bytes] = []
    banned = np.zeros(n_vocab, dtype=np.bool_)
    for token in range(n_vocab):
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, True)
        if n < 0:
            raise CPUError(f"token {token} does not fit a {size}-byte buffer; report this model")
        piece = ctypes.string_at(buf, n)
        attr = int(llama_cpp.llama_vocab_get_attr(vocab, token))
        if attr & control or (attr & user and piece.startswith(b"<") and piece.endswith(b">")):
            piece = b"\xff" + piece
        # Runs of newlines/tabs are user-defined text; markers like "[multimodal]" or "<h1>"
        # are not text the model should emit as one token.
        banned[token] = bool(attr & ban_bits) or bool(attr & user and not piece.isspace())
        pieces.append(piece)
    fptr = ctypes.cast(llama_cpp.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
    tokenizer = llguidance.LLTokenizer.from_llamacpp(  # type: ignore[attr-defined]
        tokens=pieces, vocab_ptr=vocab, tokenize_fptr=fptr, eos_token=eos, slices=None
    )
    return tokenizer, banned, pieces


def sample(
    logits: npt.NDArray[np.float32], allowed: Mask, temperature: float, rng: np.random.Generator
) -> tuple[int, float]:
    """Pick a token among ``allowed``; return it with its log-probability under the model.

    The log-probability is the model's own (unmasked, temperature 1), so candidates decoded
    under different grammars or temperatures compare on one scale.
    """
    ids = np.flatnonzero(allowed)
    candidates = logits[ids].astype(np.float64)
    if temperature <= 0.0:
        token = int(ids[int(np.argmax(candidates))])
    else:
        scaled = candidates / temperature
        scaled -= scaled.max()
        probs = np.exp(scaled)
        probs /= probs.sum()
        token = int(ids[int(rng.choice(len(ids), p=probs))])
    top = float(logits.max())
    log_z = top + float(np.log(np.exp(logits.astype(np.float64) - top).sum()))
    return token, float(logits[token]) - log_z
