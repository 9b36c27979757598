"""HTTPCPU: the wire contract on a scripted transport, then the real llama.cpp server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from llmos.cpu.http import HTTPCPU
from llmos.cpu.llama import LlamaCPU
from llmos.errors import ContextOverflow, CPUError, UsageError
from llmos.kernel.boot import Kernel
from llmos.peripherals.calculator import Calculator
from llmos.trace import Answered, Decoded, Faulted

Handler = Callable[[httpx.Request], httpx.Response]


def _server(owner: str, complete: Handler, seen: list[httpx.Request] | None = None) -> Handler:
    """An OpenAI-compatible server that says it is ``owner``, with a completions handler."""

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        path = request.url.path
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m", "owned_by": owner}]})
        if path == "/props":
            return httpx.Response(200, json={"default_generation_settings": {"n_ctx": 4096}})
        if path in ("/extras/tokenize", "/tokenize", "/v1/tokenize"):
            body = json.loads(request.content)
            text = body.get("input", body.get("content", body.get("prompt", "")))
            return httpx.Response(200, json={"tokens": [0] * (len(text.split()) + 1)})
        return complete(request)

    return handle


def _reply(text: str, finish: str = "stop") -> httpx.Response:
    return httpx.Response(200, json={
        "choices": [{"text": text, "finish_reason": finish}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    })


def _cpu(handler: Handler, **options: Any) -> HTTPCPU:
    options.setdefault("attempts", 3)
    return HTTPCPU("http://server.test/v1", transport=httpx.MockTransport(handler), **options)


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
          "additionalProperties": False}


def test_a_server_that_cannot_constrain_decoding_is_refused_without_opt_in() -> None:
    handler = _server("acme", lambda r: _reply('{"n": 1}'))
    with pytest.raises(UsageError, match="allow_unconstrained"):
        _cpu(handler)
    assert not _cpu(handler, allow_unconstrained=True).constrained


def test_the_schema_travels_in_each_servers_own_form() -> None:
    bodies: list[dict[str, Any]] = []

    def complete(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return _reply('{"n": 1}')

    for owner in ("me", "llamacpp", "vllm", "sglang"):
        _cpu(_server(owner, complete)).complete("p", schema=SCHEMA)
    gbnf, upstream, vllm, sglang = bodies
    assert "root ::=" in gbnf["grammar"] and gbnf["repeat_penalty"] == 1.0
    assert upstream["json_schema"] == SCHEMA
    assert vllm["structured_outputs"] == {"json": SCHEMA}
    assert sglang["response_format"]["json_schema"]["schema"] == SCHEMA


def test_only_a_valid_reply_is_vouched_for() -> None:
    texts = iter(['{"n": 1}', '{"n": "one"}', '{"n": 1', "hello"])
    cpu = _cpu(_server("acme", lambda r: _reply(next(texts))), allow_unconstrained=True)
    stops = [cpu.complete("p", schema=SCHEMA).stop for _ in range(3)]
    assert stops == ["grammar", "eos", "eos"]
    assert (cpu.calls, cpu.invalid) == (3, 2)
    assert cpu.complete("p").stop == "eos"  # free text: nothing to vouch for


def test_an_invalid_call_from_an_unconstrained_server_becomes_a_fault() -> None:
    texts = iter([
        '{"syscall": "calculator.evaluate", "args": {"expression": "61 * 77"}}',  # ungrounded
        '{"syscall": "answer", "args": {"text": "I cannot tell."}}',
    ])
    cpu = _cpu(_server("acme", lambda r: _reply(next(texts))), allow_unconstrained=True,
               n_ctx=4096)
    kernel = Kernel(cpu, peripherals=[Calculator()])
    reply = kernel.run(kernel.spawn(), "What is 2 + 3?")
    faults = [e for e in reply.trace if isinstance(e, Faulted)]
    assert faults and "does not fit the syscall table" in faults[0].message
    assert not reply.calls  # the ungrounded call never reached the device
    assert isinstance(reply.trace[-1], Answered)


def test_busy_and_failing_answers_are_retried_with_backoff() -> None:
    answers = iter([httpx.Response(503), httpx.Response(429, headers={"retry-after": "0"}),
                    _reply('{"n": 2}')])
    cpu = _cpu(_server("me", lambda r: next(answers)))
    assert cpu.complete("p", schema=SCHEMA).text == '{"n": 2}'


def test_a_server_that_keeps_failing_is_a_cpu_error() -> None:
    cpu = _cpu(_server("me", lambda r: httpx.Response(500, text="boom")))
    with pytest.raises(CPUError, match="kept failing after 3 tries"):
        cpu.complete("p")


def test_connection_failures_are_retried() -> None:
    tries = []

    def complete(request: httpx.Request) -> httpx.Response:
        tries.append(1)
        if len(tries) < 3:
            raise httpx.ConnectError("refused", request=request)
        return _reply("ok")

    assert _cpu(_server("me", complete)).complete("p").text == "ok"
    assert len(tries) == 3


def test_a_request_sent_and_then_lost_is_not_sent_again() -> None:
    tries = []

    def complete(request: httpx.Request) -> httpx.Response:
        tries.append(1)
        raise httpx.ReadTimeout("no reply", request=request)

    with pytest.raises(CPUError, match="not sent twice"):
        _cpu(_server("me", complete)).complete("p")
    assert len(tries) == 1


def test_a_lost_tokenize_reply_is_asked_for_again() -> None:
    lost = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/extras/tokenize" and len(lost) < 2:
            lost.append(1)
            raise httpx.ReadTimeout("no reply", request=request)
        return _server("me", lambda r: _reply(""))(request)

    assert _cpu(handle).count_tokens("two words") == 2
    assert len(lost) == 2


def test_a_prompt_the_server_cannot_fit_is_a_context_overflow() -> None:
    message = "Requested tokens (5000) exceed context window of 2048"
    cpu = _cpu(_server("me", lambda r: httpx.Response(400, json={"detail": message})))
    with pytest.raises(ContextOverflow):
        cpu.complete("p")


def test_tokens_are_counted_by_the_server_without_its_bos() -> None:
    seen: list[httpx.Request] = []
    cpu = _cpu(_server("me", lambda r: _reply(""), seen))
    assert cpu.count_tokens("three little words") == 3
    assert cpu.count_tokens("three little words") == 3
    assert [r.url.path for r in seen].count("/extras/tokenize") == 2  # "" once, then cached


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(CPUError, match="is it running"):
        HTTPCPU("http://127.0.0.1:9/v1", attempts=1)
    with pytest.raises(UsageError, match="must look like"):
        HTTPCPU("ftp://x/v1")


# -- the real llama.cpp server ----------------------------------------------------------------


@pytest.mark.model
def test_counts_on_the_server_equal_the_in_process_tokenizer(
    llama_server: str, cpu: LlamaCPU
) -> None:
    remote = HTTPCPU(llama_server)
    for text in ["", "hello", "What is 123456789 * 987654321?", "  spaces\nand lines  "]:
        assert remote.count_tokens(text) == cpu.count_tokens(text)
    remote.close()


@pytest.mark.model
def test_boot_arithmetic_through_the_calculator_on_the_server(llama_server: str) -> None:
    cpu = HTTPCPU(llama_server)
    kernel = Kernel(cpu, peripherals=[Calculator()])
    reply = kernel.run(kernel.spawn(), "What is 98765 divided by 5?")
    kernel.close()
    cpu.close()
    assert "19753" in reply.text
    assert any(c.syscall == "calculator.evaluate" and c.result == "19753" for c in reply.calls)
    decoded = [e for e in reply.trace if isinstance(e, Decoded)]
    assert decoded and cpu.calls == len(decoded) and cpu.invalid == 0


def test_grounded_patterns_become_grammars_llama_cpp_parses() -> None:
    from llmos.kernel.ground import answer_pattern, expression_pattern, words_pattern

    bodies: list[dict[str, Any]] = []

    def complete(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return _reply('{"q": "3.5 kg"}')

    cpu = _cpu(_server("me", complete))
    for pattern in [words_pattern(["3.5", "kg", "$20", "(a)"]), expression_pattern(["3.5", "12"]),
                    answer_pattern(["1234"], ["Ana"])]:
        schema = {"type": "object", "properties": {"q": {"type": "string", "pattern": pattern}}}
        cpu.complete("p", schema=schema)
    for body in bodies:
        grammar = body["grammar"]
        assert "(?:" not in grammar and "\\." not in grammar and "\\$" not in grammar


def test_a_schema_that_would_make_a_bad_grammar_is_never_sent() -> None:
    sent: list[httpx.Request] = []
    cpu = _cpu(_server("me", lambda r: _reply("{}"), sent))
    schema = {"type": "object", "properties": {"q": {"type": "string", "pattern": "^(?=a)b$"}}}
    with pytest.raises(UsageError, match="grammar"):
        cpu.complete("p", schema=schema)
    assert not [r for r in sent if r.url.path.endswith("/completions")]
