"""LlamaCPU: a GGUF model run in process by llama.cpp, decoding under a llguidance grammar.

One ``LlamaCPU`` holds one model and one llama.cpp context (sequence 0), time-shared by slots
(one per process): ``switch`` saves the outgoing slot's KV state and restores the incoming
one's, so a resumed process does not re-read its context. Each ``complete`` call switches to
its slot, tokenizes the whole rendered prompt, keeps the longest prefix whose KV state is
already in the context, evaluates only the new suffix, then decodes: under a schema, every
step masks the logits with the grammar, tokens the grammar forces are evaluated in one batch
without sampling (fast-forward), and the call ends when the grammar is complete.

Invariants:
- ``llmos.cpu.kv.KV`` is the only place that knows which tokens are in the KV cache; every
  decode and every switch goes through it, so ``KV.tokens`` always equals the evaluated
  sequence (per-slot save and restore with llama_state_seq_get_data/set_data: ``KV.switch``);
- a call under a schema returns text valid for the schema with ``stop == "grammar"``; a call
  cut short by ``max_tokens`` comes back as far as it went with ``stop == "length"`` (the
  kernel faults it, or keeps a cut answer's text), never passed off as whole; a backend
  failure raises ``CPUError``;
- special and control tokens never appear in the output (see ``llmos.cpu.grammar``);
- ``llama_cpp`` and ``llguidance`` are imported lazily: ``import llmos`` works without them.

Neighbours: implements ``llmos.cpu.base.CPU``; ``llmos.cpu.grammar`` computes the masks;
``llmos.cpu.kv`` keeps the KV journal; ``llmos.cpu.models`` provides the packaged model files.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from llmos.cpu.base import Decoding, Switch
from llmos.cpu.chat import ChatDialect, dialect_for, supports_tools
from llmos.cpu.grammar import Grammar, sample
from llmos.cpu.kv import KV
from llmos.cpu.loops import loop_cut
from llmos.errors import ContextOverflow, CPUError, LLMOSError, UsageError

__all__ = ["LlamaCPU"]

_LLAMA_ERRORS = (RuntimeError, ValueError, OSError, ctypes.ArgumentError)


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise UsageError(
            "LlamaCPU needs llama-cpp-python: run `pip install llama-cpp-python==0.3.36 "
            "llguidance` (or `pip install llmos`)",
            code="llama-missing",
        ) from exc
    return llama_cpp


def _silence(llama_cpp: Any) -> None:
    """Route llama.cpp's log lines to nowhere (some context messages ignore ``verbose``)."""
    global _SILENT_LOG
    if _SILENT_LOG is None:
        _SILENT_LOG = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(_SILENT_LOG, ctypes.c_void_p(0))


_SILENT_LOG: Any = None


class LlamaCPU:
    """A GGUF model run in process by llama-cpp-python, decoding under llguidance grammars.

    Args:
        path: the GGUF file.
        n_ctx: the context window, in tokens.
        n_threads: CPU threads for prefill and decoding; None takes the idle cores
            (``llmos.cpu.models.free_cores``: allowed cores minus the load average, at least 1).
        n_batch: the most tokens evaluated in one llama_decode call (prefill chunks).
        separators: item and key separators of the JSON the grammar allows; match how your
            prompts render JSON (the defaults are those of ``json.dumps``).
        state_bytes: bytes of saved per-slot KV states kept in memory; colder states spill to
            temp files beyond it (12.7 KB per resident token on Gemma 3 270M).
        chat: render the context through the GGUF's chat template and decode calls in the
            model's native form (``llmos.cpu.chat``); None: when the template lists tools and
            asks for ``<tool_call>`` replies; False: the plain transcript of a base model.
        loop_guard: end a string or reply that repeats itself (``llmos.cpu.loops``).
        verbose: let llama.cpp print its logs.

    Raises:
        UsageError: llama-cpp-python is not installed, or ``path`` is not a file.
        CPUError: llama.cpp could not load the file (corrupt or not a GGUF).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        separators: tuple[str, str] = (", ", ": "),
        state_bytes: int = 512 << 20,
        chat: bool | None = None,
        loop_guard: bool = True,
        verbose: bool = False,
    ) -> None:
        llama_cpp = _import_llama()
        self._path = Path(path)
        if not self._path.is_file():
            raise UsageError(
                f"no model file at {str(self._path)!r}: pass the path of a GGUF file, "
                "or use LlamaCPU.default() for the embedded model",
                code="model-path",
            )
        if n_threads is None:
            from llmos.cpu.models import free_cores

            n_threads = free_cores()
        if n_threads < 1:
            raise UsageError(f"n_threads must be at least 1, not {n_threads}", code="args")
        if not verbose:
            _silence(llama_cpp)
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(self._path),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_ubatch=n_batch,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                logits_all=False,
                swa_full=True,  # a sliding-window cache cannot rewind: reuse needs the full one
                verbose=verbose,
            )
        except _LLAMA_ERRORS as exc:
            raise CPUError(
                f"llama.cpp could not load {str(self._path)!r} ({exc}): the file is corrupt or "
                "not a GGUF model; download or assemble it again"
            ) from exc
        self._lib = llama_cpp
        self._n_ctx = int(self._llama.n_ctx())
        self._n_vocab = int(self._llama.n_vocab())
        self._kv = KV(llama_cpp, self._llama.ctx, n_batch, self._n_ctx,
                      n_vocab=self._n_vocab, budget=state_bytes)
        self._separators = separators
        self._grammar: Grammar | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.loop_guard = loop_guard
        if chat is None:
            chat = supports_tools(self.chat_template)
        self._dialect = dialect_for(self._llama, llama_cpp, self.name) if chat else None

    @classmethod
    def named(cls, name: str, *, n_ctx: int = 4096, n_threads: int | None = None) -> LlamaCPU:
        """Load a packaged model by name (``llmos.cpu.models.MODELS``), checked by its sha256.

        Raises ``UsageError`` (unknown, or not installed: the message gives the pip command) or
        ``CPUError`` (cannot be assembled, does not match its pinned hash, does not load).
        """
        from llmos.cpu import models

        path = models.model_path(name)
        try:
            return cls(path, n_ctx=n_ctx, n_threads=n_threads)
        except CPUError:  # the stamp vouched for a file that does not load: hash the bytes
            path.with_name(path.name + ".verified.json").unlink(missing_ok=True)
            return cls(models.model_path(name), n_ctx=n_ctx, n_threads=n_threads)

    @classmethod
    def default(cls, *, n_ctx: int = 4096, n_threads: int | None = None) -> LlamaCPU:
        """Load the default packaged model, ``llmos.cpu.models.DEFAULT`` (docs/models.md)."""
        from llmos.cpu import models

        return cls.named(models.DEFAULT, n_ctx=n_ctx, n_threads=n_threads)

    @property
    def name(self) -> str:
        """The model file's name without its extension."""
        return self._path.stem

    @property
    def n_ctx(self) -> int:
        """The context window, in tokens."""
        return self._n_ctx

    @property
    def chat_template(self) -> str | None:
        """The GGUF's chat template (Jinja source), or None for a base model without one."""
        template = self._llama.metadata.get("tokenizer.chat_template")
        return str(template) if template else None

    @property
    def dialect(self) -> ChatDialect | None:
        """How this model wants its context and calls (a chat model), or None (plain)."""
        return self._dialect

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (call :meth:`reset` after using it directly)."""
        return self._llama

    def reset(self) -> None:
        """Forget the KV state and every saved slot: the next call prefills its whole prompt."""
        with self._lock:
            self._check_open()
            self._kv.clear()
            self._kv.drop_all()

    def switch(self, slot: Hashable) -> Switch:
        """Give the context to ``slot`` (a process id): a context switch, with its cost.

        The outgoing slot's KV state is copied out (kept in memory up to ``state_budget``,
        spilled to a temp file beyond it); ``slot``'s saved state, if any, is copied back in.
        ``complete`` switches by itself; call this to account for the switch separately.
        """
        with self._lock:
            self._check_open()
            try:
                return self._kv.switch(slot)
            except _LLAMA_ERRORS as exc:
                self._kv.clear()
                raise CPUError(f"llama.cpp failed in a context switch: {exc}; retry") from exc

    def forget(self, slot: Hashable) -> None:
        """Drop ``slot``'s saved KV state (its process ended); its next call re-prefills."""
        with self._lock:
            self._kv.forget(slot)

    @property
    def state_budget(self) -> int:
        """Bytes of saved slot states kept in memory before the coldest spill to files."""
        return self._kv.budget

    @state_budget.setter
    def state_budget(self, value: int) -> None:
        if value < 0:
            raise UsageError(f"state_budget must be >= 0 bytes, not {value}", code="args")
        self._kv.budget = value

    @property
    def states(self) -> dict[Hashable, tuple[Literal["memory", "file"], int]]:
        """Saved slot states: where each is (``memory`` or a spilled ``file``) and its bytes."""
        return self._kv.states

    def logits(self, prompt: str, *, slot: Hashable = 0) -> npt.NDArray[np.float32]:
        """The model's next-token logits after ``prompt`` (a copy), reusing ``slot``'s KV state.

        For scoring and for checking that a context switch changes nothing.
        """
        with self._lock:
            self._check_open()
            tokens = self._tokenize(prompt, bos=True)
            if len(tokens) >= self._n_ctx:
                raise ContextOverflow(
                    f"the prompt takes {len(tokens)} tokens > n_ctx={self._n_ctx}; shorten it"
                )
            try:
                self._kv.switch(slot)
                self._kv.sync(tokens)
                return np.array(self._kv.logits(self._n_vocab), dtype=np.float32)
            except _LLAMA_ERRORS as exc:
                self._kv.clear()
                raise CPUError(f"llama.cpp failed while reading logits: {exc}") from exc

    def close(self) -> None:
        """Free the model and its context; further calls raise ``UsageError``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._kv.free()
            self._grammar = None
            self._llama.close()

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this LlamaCPU was closed; load a new one", code="cpu-closed")

    def _tokenize(self, text: str, *, bos: bool) -> list[int]:
        if self._dialect is not None:  # control tokens only where the template wrote them
            return self._dialect.tokenize(self._llama, text, bos=bos)
        if not text:
            return [int(self._llama.token_bos())] if bos else []
        # special=False: text in the context never becomes a control token. Pages hold text
        # read from outside, and a web page that writes "<start_of_turn>" or "<eos>" must stay
        # a string of characters, not end the document or open a turn.
        return [int(t) for t in self._llama.tokenize(text.encode(), add_bos=bos, special=False)]

    def count_tokens(self, text: str) -> int:
        """Exact number of tokens ``text`` takes in the model's tokenizer (no BOS)."""
        with self._lock:
            self._check_open()
            try:
                return len(self._tokenize(text, bos=False))
            except _LLAMA_ERRORS as exc:
                raise CPUError(f"the tokenizer failed: {exc}") from exc

    def _text(self, tokens: Sequence[int]) -> str:
        return str(
            self._llama.detokenize(list(tokens), special=False).decode("utf-8", errors="replace")
        )

    def complete(
        self,
        prompt: str,
        *,
        schema: Mapping[str, Any] | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        slot: Hashable = 0,
    ) -> Decoding:
        """Continue ``prompt``; under ``schema`` the text is one JSON value valid for it.

        ``max_tokens`` bounds the sampled tokens; forced tokens are free but occupy context. A
        value not complete at ``max_tokens`` comes back as it is, with ``stop == "length"``.

        Raises:
            ContextOverflow: the prompt plus ``max_tokens`` does not fit in ``n_ctx``.
            CPUError: llama.cpp failed.
            UsageError: bad arguments, or a schema llguidance cannot compile.
        """
        if max_tokens < 1:
            raise UsageError(f"max_tokens must be at least 1, not {max_tokens}", code="args")
        with self._lock:
            self._check_open()
            started = time.perf_counter()
            try:
                return self._complete(prompt, schema, max_tokens, temperature, seed, slot, started)
            except LLMOSError:
                raise
            except _LLAMA_ERRORS as exc:
                self._kv.clear()
                raise CPUError(f"llama.cpp failed while decoding: {exc}; retry the call") from exc

    def _roll_back_loop(
        self, matcher: Any, loop: int, prompt: list[int], out: list[int], allowed: Any,
        native: bool,
    ) -> Any:
        """A string that repeats itself ends where the repeat began, if the grammar lets it:
        the repeat leaves the output, the matcher and the KV cache, and only closing tokens are
        allowed next (the mask returned; ``allowed`` when it may not close there)."""
        grammar = self._grammar
        assert grammar is not None
        back = matcher.deep_copy()
        back.rollback(loop)
        ends = grammar.allowed(back)
        closing = ends & grammar.closers
        closing[grammar.eos] = native and ends[grammar.eos]  # a chat reply ends at end of text
        if not closing.any():
            return allowed
        matcher.rollback(loop)
        del out[-loop:]
        target = prompt + out
        self._kv.rewind(len(target) - 1)
        self._kv.extend(target[len(self._kv.tokens):])
        return closing

    def _complete(
        self,
        prompt: str,
        schema: Mapping[str, Any] | None,
        max_tokens: int,
        temperature: float,
        seed: int,
        slot: Hashable,
        started: float,
    ) -> Decoding:
        tokens = self._tokenize(prompt, bos=True)
        if len(tokens) + max_tokens > self._n_ctx:
            raise ContextOverflow(
                f"the prompt takes {len(tokens)} tokens and max_tokens is {max_tokens}: "
                f"{len(tokens) + max_tokens} > n_ctx={self._n_ctx}; evict pages from RAM, "
                "lower max_tokens, or load the model with a larger n_ctx"
            )
        if self._grammar is None:
            self._grammar = Grammar(self._llama, separators=self._separators)
            self._grammar.allow(self._dialect.call_tokens if self._dialect else ())
        grammar = self._grammar
        native = self._dialect is not None and schema is not None
        # a chat model decodes in its native call form (or a plain reply): a lark grammar
        form = self._dialect.grammar(schema) if native and self._dialect and schema else schema
        matcher = grammar.matcher(form) if form is not None else None
        self._kv.switch(slot)
        reused = self._kv.sync(tokens)
        rng = np.random.default_rng(seed)
        out: list[int] = []
        pending: list[int] = []  # chosen but not yet evaluated into the KV cache
        decoded = forced = 0
        logprob = 0.0
        stop: Literal["grammar", "length", "eos"]
        while True:
            if matcher is not None:
                if matcher.is_stopped():
                    stop = "grammar"
                    break
                ff = grammar.forced(matcher)
                if ff:
                    out += ff
                    pending += ff
                    forced += len(ff)
                    continue
            if decoded >= max_tokens:
                stop = "length"
                break
            if pending:
                self._kv.extend(pending)
                pending = []
            allowed = grammar.allowed(matcher) if matcher is not None else grammar.text_tokens
            loop = loop_cut(out, self._text) if self.loop_guard else 0
            if loop and matcher is None:  # free text that repeats itself is finished
                del out[-loop:]
                stop = "eos"
                break
            if loop and matcher is not None:
                allowed = self._roll_back_loop(matcher, loop, tokens, out, allowed, native)
            token, lp = sample(self._kv.logits(self._n_vocab), allowed, temperature, rng)
            decoded += 1
            logprob += lp
            if matcher is None and token in grammar.eog:
                stop = "eos"
                break
            if matcher is not None:
                if token == grammar.eos:  # allowed only where the grammar accepts
                    stop = "grammar"
                    break
                grammar.accept(matcher, token)
            out.append(token)
            pending = [token]
        if matcher is not None and not matcher.is_accepting():
            stop = "length"  # cut short: the text is not a whole value (the caller checks stop)
        # special=native: a native call's <tool_call> markers (no other special token passes)
        text = self._llama.detokenize(out, special=native).decode("utf-8", errors="replace")
        if native and self._dialect is not None:
            text = self._dialect.to_call(text, stop)
        return Decoding(
            text=text,
            prompt_tokens=len(tokens),
            reused_tokens=reused,
            prefilled_tokens=len(tokens) - reused,
            decoded_tokens=decoded,
            forced_tokens=forced,
            logprob=logprob,
            seconds=time.perf_counter() - started,
            stop=stop,
        )
