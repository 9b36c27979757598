"""HTTPCPU: the CPU behind an OpenAI-compatible server (llama.cpp server, vLLM, SGLang).

This is the scale-out path: many kernels, on one host or many, share one inference server.
Each ``complete`` is one ``POST /v1/completions`` of the whole rendered prompt; the server's
prefix cache (llama.cpp's slot cache, vLLM's automatic prefix caching, SGLang's radix cache)
replaces the in-process KV switch. The kernel's guarantees are kept where the server can:

- *constrained decoding*: the step schema travels with the request in the server's own form
  (llama-cpp-python: a GBNF ``grammar`` converted here from the schema; upstream
  ``llama-server``: ``json_schema``; vLLM: ``structured_outputs``; SGLang: ``response_format``);
- *exact token counts*: RAM budgets are counted by the server's tokenizer (its tokenize
  endpoint), never estimated.

A server that cannot constrain decoding is refused unless the caller opts in
(``allow_unconstrained=True``). Either way every reply under a schema is validated here:
``Decoding.stop`` is ``"grammar"`` only for text that is valid for the schema, so a bad reply
comes back as ``"eos"`` and the kernel turns it into a fault the model reads.

Retries (tenacity, exponential backoff with jitter) cover what provably did not run or what
the server asked to be retried: connection failures before the request was sent, 429 and 5xx
answers (``Retry-After`` respected). A completion that was sent and then lost (read timeout,
dropped connection) may still be decoding on the server, so it is not sent again: it raises
``CPUError`` saying so. Reads that change nothing (the model list, tokenizing) are retried
after a lost reply too.

Invariants:
- ``count_tokens`` and ``Decoding.prompt_tokens`` come from the server's tokenizer;
- ``Decoding.stop == "grammar"`` implies the text is one JSON value valid for the schema;
- every httpx error leaves as ``CPUError`` (or ``ContextOverflow``), its cause kept.

Neighbours: implements ``llmos.cpu.base.CPU``; ``llmos.cpu.grammar.violation`` validates;
``llmos.kernel.sched`` turns an unvouched reply into a fault.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Literal

import httpx
import tenacity

from llmos.cpu.base import Decoding
from llmos.cpu.grammar import violation
from llmos.errors import ContextOverflow, CPUError, UsageError

__all__ = ["HTTPCPU", "Server"]

Server = Literal["llama-cpp-python", "llama-server", "vllm", "sglang", "openai"]
_CONSTRAINS: frozenset[str] = frozenset({"llama-cpp-python", "llama-server", "vllm", "sglang"})
_OWNERS: dict[str, Server] = {
    "me": "llama-cpp-python", "llamacpp": "llama-server", "vllm": "vllm", "sglang": "sglang",
}
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_OVERFLOW = re.compile(r"context (?:window|length)|maximum context|exceed", re.IGNORECASE)
_GBNF_ESCAPES = frozenset('xuUtrn\\"[]')  # what llama.cpp's GBNF parser accepts after a backslash
_COUNT_CACHE = 4096  # distinct texts whose token counts are remembered (pages are re-counted)


class _Retry(Exception):
    """A response the server asked us to send again (429, 5xx), with its advised delay."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}: {response.text[:200]}")
        self.response = response
        try:
            self.after = min(30.0, float(response.headers.get("retry-after", "")))
        except ValueError:
            self.after = 0.0


def _wait(state: tenacity.RetryCallState) -> float:
    backoff = tenacity.wait_random_exponential(multiplier=0.25, max=8.0)(state)
    exc = state.outcome.exception() if state.outcome is not None else None
    return max(backoff, exc.after if isinstance(exc, _Retry) else 0.0)


def _gbnf_pattern(pattern: str) -> str:
    """``pattern`` in the regex subset llama.cpp's schema-to-GBNF converter reads right.

    The converter knows plain groups only (``(?:`` becomes ``(``: the same language when
    nothing refers back); it writes an escaped punctuation mark as a GBNF escape llama.cpp
    rejects (``\\.``), so one becomes a one-character class (``[.]``); and it applies a
    pattern to the raw characters between the quotes, so a negated class also excludes ``"``
    (the JSON string would end there).
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            plain = not in_class and not nxt.isalnum() and nxt not in "\\^[]"
            out.append(f"[{nxt}]" if plain else char + nxt)
            i += 2
            continue
        if in_class:
            in_class = char != "]"
            out.append(char)
        elif char == "[":
            in_class = True
            negated = pattern.startswith("[^", i)
            out.append('[^"' if negated else "[")
            i += 1 if negated else 0
        elif pattern.startswith("(?:", i):
            out.append("(")
            i += 2
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _rigid(grammar: str) -> str:
    """The converter's grammar with ``json.dumps`` spacing (``", "``, ``": "``, nothing else).

    Its JSON allows a space after every token; the prompts render calls as ``json.dumps``
    does, and the in-process grammar forces that form too, so the model writes on the server
    the same call text it sees in its examples.
    """
    return (grammar.replace('"," space', '", "').replace('":" space', '": "')
            .replace('space ::= " "?', 'space ::= ""'))


def _check_escapes(grammar: str) -> None:
    """Raise ValueError on an escape llama.cpp's GBNF parser rejects.

    A grammar llama.cpp cannot parse takes llama-cpp-python's server down with it (the
    sampler is built from a null grammar), so such a grammar is never sent.
    """
    at = grammar.find("\\")
    while at != -1:
        escaped = grammar[at + 1 : at + 2]
        if escaped not in _GBNF_ESCAPES:
            raise ValueError(f"the grammar holds an escape llama.cpp rejects: \\{escaped}")
        at = grammar.find("\\", at + 2)


def _gbnf_schema(value: Any) -> Any:
    """``value`` with its regex patterns rewritten by :func:`_gbnf_pattern`."""
    if isinstance(value, dict):
        return {k: (_gbnf_pattern(v) if k == "pattern" and isinstance(v, str)
                    else _gbnf_schema(v))
                for k, v in value.items() if k != "x-guidance"}
    if isinstance(value, list):
        return [_gbnf_schema(v) for v in value]
    return value


class HTTPCPU:
    """A model served over HTTP by an OpenAI-compatible server.

    Args:
        url: the server's OpenAI base, e.g. ``"http://127.0.0.1:8080/v1"``.
        model: the served model id; None takes the first one ``/v1/models`` lists.
        server: which server it is; ``"auto"`` asks ``/v1/models`` (llama-cpp-python,
            llama-server, vLLM and SGLang say who they are). ``"openai"`` is any other
            OpenAI-compatible server: it cannot constrain decoding.
        n_ctx: the server's context window in tokens; None asks the server where it says
            (llama-server ``/props``, vLLM ``max_model_len``), else 2048 (llama-cpp-python's
            default: pass the server's ``--n_ctx``).
        allow_unconstrained: accept a server that cannot constrain decoding; every reply is
            still validated and an invalid one becomes a fault the model reads.
        api_key: sent as a bearer token, if the server wants one.
        timeout: seconds to wait for one reply (decoding included).
        attempts: tries per request for connection failures and 429/5xx answers.
        transport: an httpx transport (tests).

    Raises:
        UsageError: bad ``url``, or a server that cannot constrain decoding without opt-in.
        CPUError: the server cannot be reached or answers nonsense.
    """

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        server: Server | Literal["auto"] = "auto",
        n_ctx: int | None = None,
        allow_unconstrained: bool = False,
        api_key: str | None = None,
        timeout: float = 600.0,
        attempts: int = 5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = httpx.URL(url)
        if parts.scheme not in ("http", "https") or not parts.host:
            raise UsageError(f"CPU url {url!r} must look like http://host:port/v1", code="http")
        if attempts < 1:
            raise UsageError(f"attempts must be at least 1, not {attempts}", code="args")
        base = url.rstrip("/")
        self._base = base
        self._root = base.removesuffix("/v1")
        self._attempts = attempts
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0), headers=headers, transport=transport,
        )
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()  # the count cache and counters (kernels share a CPU)
        self.calls = 0  # replies decoded under a schema
        self.invalid = 0  # of those, replies that were not valid for their schema
        listed = self._request("GET", f"{base}/models")
        try:
            entries = listed["data"]
            entry = next(e for e in entries if model is None or e.get("id") == model)
        except (KeyError, TypeError, StopIteration) as exc:
            raise CPUError(
                f"the server at {base!r} does not list the model {model!r} at /models; "
                "check the url and the model id"
            ) from exc
        self._model = str(entry["id"])
        kind = _OWNERS.get(str(entry.get("owned_by", "")), "openai") if server == "auto" else server
        self._server: Server = kind
        if kind not in _CONSTRAINS and not allow_unconstrained:
            raise UsageError(
                f"the server at {base!r} cannot constrain decoding to the syscall schema, so "
                "the model may write malformed or ungrounded calls; pass server=... if it is a "
                "llama.cpp, vLLM or SGLang server, or allow_unconstrained=True to accept it "
                "(every reply is then validated and a bad one becomes a fault)",
                code="http-unconstrained",
            )
        self._n_ctx = n_ctx or self._server_ctx(entry)
        try:  # the tokenizer's fixed prefix (llama-cpp-python counts a BOS), and a probe
            self._bos = self._tokenize("")
        except CPUError as exc:
            raise UsageError(
                f"the server at {base!r} has no tokenize endpoint llmos knows ({exc}), so RAM "
                "budgets cannot be counted exactly; use a llama.cpp, vLLM or SGLang server",
                code="http-tokenize",
            ) from exc

    # -- the CPU protocol ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The served model id (its last path component)."""
        return self._model.rstrip("/").rsplit("/", 1)[-1]

    @property
    def n_ctx(self) -> int:
        """The server's context window, in tokens."""
        return self._n_ctx

    @property
    def server(self) -> Server:
        """Which kind of server this is (decides how decoding is constrained)."""
        return self._server

    @property
    def constrained(self) -> bool:
        """True when the server decodes under the schema (not just validated afterwards)."""
        return self._server in _CONSTRAINS

    def count_tokens(self, text: str) -> int:
        """Exact number of tokens ``text`` takes in the server's tokenizer (no BOS)."""
        with self._lock:
            known = self._counts.get(text)
            if known is not None:
                self._counts.move_to_end(text)
                return known
        count = self._tokenize(text) - self._bos
        with self._lock:
            self._counts[text] = count
            if len(self._counts) > _COUNT_CACHE:
                self._counts.popitem(last=False)
        return count

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
        """Continue ``prompt`` on the server; under ``schema`` the reply is validated.

        ``slot`` is unused: the server's prefix cache finds each process's prefix itself.

        Raises:
            ContextOverflow: the server says the prompt does not fit its context.
            CPUError: the server failed or could not be reached after the retries.
        """
        if max_tokens < 1:
            raise UsageError(f"max_tokens must be at least 1, not {max_tokens}", code="args")
        started = time.perf_counter()
        body: dict[str, Any] = {
            "model": self._model, "prompt": prompt, "max_tokens": max_tokens,
            "temperature": temperature, "seed": seed, "stream": False,
        }
        if schema is not None and self.constrained:
            body.update(self._constraint(schema))
        if self._server in ("llama-cpp-python", "llama-server"):
            # plain sampling, as in process: no repetition penalty, no truncation
            body.update(top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0)
        reply = self._request("POST", f"{self._base}/completions", body, idempotent=False)
        try:
            choice = reply["choices"][0]
            text = str(choice["text"])
            usage = reply.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens", 0))
            decoded = int(usage.get("completion_tokens", 0))
            details = usage.get("prompt_tokens_details") or {}
            reused = int(details.get("cached_tokens") or
                         (reply.get("timings") or {}).get("cache_n") or 0)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise CPUError(f"the server's completion reply is malformed: {exc}") from exc
        stop: Literal["grammar", "length", "eos"] = "eos"
        if choice.get("finish_reason") == "length":
            stop = "length"
        if schema is not None:
            valid = stop != "length" and violation(text, schema) is None
            stop = "grammar" if valid else stop
            with self._lock:
                self.calls += 1
                self.invalid += stop == "eos"
        return Decoding(
            text=text, prompt_tokens=prompt_tokens, reused_tokens=min(reused, prompt_tokens),
            prefilled_tokens=max(0, prompt_tokens - reused), decoded_tokens=decoded,
            forced_tokens=0, logprob=0.0, seconds=time.perf_counter() - started, stop=stop,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- the server's dialect --------------------------------------------------------------

    def _constraint(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        if self._server == "llama-cpp-python":
            from llama_cpp.llama_grammar import json_schema_to_gbnf

            try:
                grammar = _rigid(json_schema_to_gbnf(json.dumps(_gbnf_schema(schema))))
                _check_escapes(grammar)
                return {"grammar": grammar}
            except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as exc:
                raise UsageError(
                    f"llama.cpp cannot turn this schema into a grammar ({exc}); simplify the "
                    "argument model's patterns", code="http-schema",
                ) from exc
        plain = {k: v for k, v in schema.items() if k != "x-guidance"}
        if self._server == "llama-server":
            return {"json_schema": plain}
        if self._server == "vllm":
            return {"structured_outputs": {"json": plain}}
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "syscall", "schema": plain}}}

    def _tokenize(self, text: str) -> int:
        """Tokens in ``text`` by the server's tokenizer (llama-cpp-python counts a BOS)."""
        if self._server == "llama-cpp-python":
            got = self._request("POST", f"{self._root}/extras/tokenize", {"input": text})
        elif self._server == "llama-server":
            got = self._request("POST", f"{self._root}/tokenize",
                                {"content": text, "add_special": False})
        else:  # vLLM, SGLang, and any server that copies their tokenize endpoint
            path = "/v1/tokenize" if self._server == "sglang" else "/tokenize"
            got = self._request("POST", f"{self._root}{path}",
                                {"model": self._model, "prompt": text, "content": text,
                                 "add_special_tokens": False, "add_special": False})
        try:
            return int(got["count"]) if "count" in got else len(got["tokens"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CPUError(f"the server's tokenize reply is malformed: {exc}") from exc

    def _server_ctx(self, entry: Mapping[str, Any]) -> int:
        if isinstance(entry.get("max_model_len"), int):  # vLLM, SGLang
            return int(entry["max_model_len"])
        if self._server == "llama-server":
            props = self._request("GET", f"{self._root}/props")
            try:
                return int(props["default_generation_settings"]["n_ctx"])
            except (KeyError, TypeError, ValueError):
                pass
        return 2048

    # -- transport -------------------------------------------------------------------------

    def _request(self, method: str, url: str, body: Any = None, *, idempotent: bool = True
                 ) -> Any:
        """Send one request; retry what did not run, or (``idempotent``) what may run twice.

        Reading the model list or tokenizing changes nothing on the server, so a lost reply is
        asked for again; a completion is sent once (``idempotent=False``).
        """
        retried: tuple[type[Exception], ...] = (
            httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, _Retry)
        if idempotent:
            retried += (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._attempts), wait=_wait, reraise=True,
            retry=tenacity.retry_if_exception_type(retried),
        )
        try:
            response = retrying(self._send, method, url, body)
        except _Retry as exc:
            raise CPUError(
                f"the server at {url!r} kept failing after {self._attempts} tries ({exc}); "
                "check its log"
            ) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise CPUError(
                f"cannot reach the model server at {url!r} after {self._attempts} tries "
                f"({type(exc).__name__}); is it running?"
            ) from exc
        except httpx.HTTPError as exc:
            # sent, then lost: the server may have decoded it, so it is not sent again
            raise CPUError(
                f"the request to {url!r} was sent but no reply came ({type(exc).__name__}: "
                f"{exc}); a completion is not sent twice because the server may still be "
                "running it: retry the step, or raise HTTPCPU(timeout=...)"
            ) from exc
        if response.status_code >= 400:
            detail = response.text[:500]
            if response.status_code == 400 and _OVERFLOW.search(detail):
                raise ContextOverflow(
                    f"the server says the prompt does not fit its context ({detail}); evict "
                    "pages, lower max_tokens, or give HTTPCPU the server's real n_ctx"
                )
            raise CPUError(f"the server answered HTTP {response.status_code} to {url!r}: {detail}")
        try:
            return response.json()
        except ValueError as exc:
            raise CPUError(f"the server's reply from {url!r} is not JSON: {exc}") from exc

    def _send(self, method: str, url: str, body: Any) -> httpx.Response:
        response = self._http.request(method, url, json=body)
        if response.status_code in _RETRY_STATUS:
            raise _Retry(response)
        return response
