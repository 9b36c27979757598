"""LlamaCPU on the real default model: counts, KV reuse, masks, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmos.cpu.base import CPU
from llmos.cpu.llama import LlamaCPU
from llmos.errors import ContextOverflow, CPUError, UsageError

CALC = {
    "type": "object",
    "properties": {
        "syscall": {"const": "calculator.evaluate"},
        "args": {
            "type": "object",
            "properties": {"expression": {"type": "string", "maxLength": 40}},
            "required": ["expression"],
        },
    },
    "required": ["syscall", "args"],
}
PROMPT = (
    "Q: What is 12 * 7?\n"
    'CALL: {"syscall": "calculator.evaluate", "args": {"expression": "12 * 7"}}\n'
    "Q: What is 345 + 99?\nCALL: "
)


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"LlamaCPU\.default"):
        LlamaCPU(tmp_path / "absent.gguf")


def test_corrupt_file_is_a_cpu_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"not a model" * 100)
    with pytest.raises(CPUError, match="corrupt") as info:
        LlamaCPU(bad)
    assert info.value.__cause__ is not None


@pytest.mark.model
def test_is_a_cpu(cpu: LlamaCPU) -> None:
    assert isinstance(cpu, CPU)
    assert cpu.n_ctx >= 2048
    assert "gemma" in cpu.name
    assert cpu.chat_template is None  # a base model: the kernel renders a transcript


@pytest.mark.model
@pytest.mark.parametrize("text", ["", "Hello world", "  two  spaces\n\nand lines", "é 漢字 🙂"])
def test_count_tokens_matches_the_tokenizer(cpu: LlamaCPU, text: str) -> None:
    expected = cpu.llama.tokenize(text.encode(), add_bos=False, special=True) if text else []
    assert cpu.count_tokens(text) == len(expected)


@pytest.mark.model
def test_schema_call_is_valid_and_forced_tokens_are_fast_forwarded(cpu: LlamaCPU) -> None:
    dec = cpu.complete(PROMPT, schema=CALC, max_tokens=40)
    call = json.loads(dec.text)
    assert call["syscall"] == "calculator.evaluate"
    assert isinstance(call["args"]["expression"], str)
    assert dec.stop == "grammar"
    # '{"syscall": "calculator.evaluate", "args": {"expression": "' is forced by the grammar.
    assert dec.forced_tokens >= 8
    assert dec.decoded_tokens >= 1
    assert dec.logprob <= 0.0
    assert dec.prompt_tokens == cpu.count_tokens(PROMPT) + 1  # BOS
    assert dec.reused_tokens + dec.prefilled_tokens == dec.prompt_tokens


@pytest.mark.model
def test_second_call_prefills_only_the_new_suffix(cpu: LlamaCPU) -> None:
    cpu.reset()
    head = "The journal begins. Alice adds 2 and 3."
    first = cpu.complete(head, max_tokens=1)
    assert (first.reused_tokens, first.prefilled_tokens) == (0, first.prompt_tokens)
    tail = " Zebra quartz violin."
    second = cpu.complete(head + tail, max_tokens=1)
    assert second.reused_tokens == first.prompt_tokens
    assert second.prefilled_tokens == cpu.count_tokens(tail)
    assert second.prompt_tokens == first.prompt_tokens + cpu.count_tokens(tail)


@pytest.mark.model
def test_calls_reuse_the_journal_they_extend(cpu: LlamaCPU) -> None:
    cpu.reset()
    first = cpu.complete(PROMPT, schema=CALC, max_tokens=40)
    suffix = "\nZebra quartz violin: what is 3 + 4?\nCALL: "
    second = cpu.complete(PROMPT + first.text + suffix, schema=CALC, max_tokens=40)
    full = cpu.llama.tokenize((PROMPT + first.text + suffix).encode(), special=True)
    assert second.prompt_tokens == len(full)
    # The prompt ends in a space that the call's "{" re-tokenizes with: one token is lost,
    # everything else evaluated before (prompt and the call's own tokens) is reused.
    assert second.reused_tokens >= first.prompt_tokens - 1
    assert second.prefilled_tokens == second.prompt_tokens - second.reused_tokens
    assert second.prefilled_tokens <= cpu.count_tokens(first.text + suffix) + 1
    again = cpu.complete(PROMPT + first.text + suffix, schema=CALC, max_tokens=40)
    assert again.prefilled_tokens <= 1
    assert json.loads(again.text)["syscall"] == "calculator.evaluate"


@pytest.mark.model
def test_no_special_tokens_inside_json(cpu: LlamaCPU, monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    import llmos.cpu.llama as llama_module

    sampled: list[int] = []
    real = llama_module.sample

    def spy(*args: Any, **kwargs: Any) -> tuple[int, float]:
        token, lp = real(*args, **kwargs)
        sampled.append(token)
        return token, lp

    monkeypatch.setattr(llama_module, "sample", spy)
    bait = "[multimodal]<start_of_image><eos><end_of_turn>"
    shot = f'Q: say it\nA: {{"text": "{bait}{bait}"}}\n'
    prompt = shot * 3 + "Q: say it\nA: "
    schema = {"type": "object", "properties": {"text": {"type": "string", "maxLength": 60}}}
    dec = cpu.complete(prompt, schema=schema, max_tokens=60, temperature=0.9, seed=1)
    json.loads(dec.text)
    vocab = llama_cpp.llama_model_get_vocab(cpu.llama.model)
    special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNUSED
    bad = {cpu.llama.tokenize(b, add_bos=False, special=True)[0] for b in (b"[multimodal]",)}
    for token in sampled:
        attr = llama_cpp.llama_vocab_get_attr(vocab, token)
        assert not (attr & special) or token == llama_cpp.llama_vocab_eos(vocab), token
        assert token not in bad
        if attr & llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED:
            assert cpu.llama.detokenize([token], special=True).isspace()


@pytest.mark.model
def test_plain_decoding_stops_at_length_or_eos(cpu: LlamaCPU) -> None:
    dec = cpu.complete("The capital of France is", max_tokens=5)
    assert dec.stop in ("length", "eos")
    assert dec.decoded_tokens <= 5
    assert dec.forced_tokens == 0
    assert "<" not in dec.text or "<eos>" not in dec.text


@pytest.mark.model
def test_sampling_repeats_with_the_same_seed(cpu: LlamaCPU) -> None:
    runs = []
    for seed in (7, 7):
        # The same KV history: a batched prefill and a one-token re-evaluation round
        # differently in llama.cpp, which can move a sampled token.
        cpu.reset()
        runs.append(cpu.complete("Once upon a time", max_tokens=8, temperature=1.0, seed=seed))
    assert runs[0].text == runs[1].text
    assert runs[0].logprob == runs[1].logprob


@pytest.mark.model
def test_grammar_cut_at_max_tokens_says_length(cpu: LlamaCPU) -> None:
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 30}},
        "required": ["text"],
    }
    dec = cpu.complete('A: {"text": "', schema=schema, max_tokens=3)
    assert dec.stop == "length" and dec.decoded_tokens == 3
    with pytest.raises(json.JSONDecodeError):
        json.loads(dec.text)


@pytest.mark.model
def test_context_overflow_says_what_to_do(cpu: LlamaCPU) -> None:
    with pytest.raises(ContextOverflow, match="evict pages"):
        cpu.complete("Hello", max_tokens=cpu.n_ctx)


@pytest.mark.model
def test_bad_schema_is_a_usage_error(cpu: LlamaCPU) -> None:
    with pytest.raises(UsageError, match="schema"):
        cpu.complete("x", schema={"not": {"type": "string"}}, max_tokens=4)


@pytest.mark.model
def test_bad_max_tokens_is_a_usage_error(cpu: LlamaCPU) -> None:
    with pytest.raises(UsageError, match="max_tokens"):
        cpu.complete("x", max_tokens=0)


_LOOPY = "the cat sat on the mat. "


def test_free_text_that_repeats_itself_stops(cpu: LlamaCPU) -> None:
    dec = cpu.complete("I like tea. " * 4, max_tokens=60)
    assert dec.stop == "eos"
    assert dec.text.count("like tea") <= 1


def test_a_string_that_repeats_itself_is_closed_where_the_repeat_began(cpu: LlamaCPU) -> None:
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string", "maxLength": 300}},
        "required": ["text"],
        "additionalProperties": False,
    }
    line = json.dumps({"text": (_LOOPY * 3).strip()})
    dec = cpu.complete(line + "\n" + line + "\n", schema=schema, max_tokens=80)
    text = json.loads(dec.text)["text"]  # still one valid JSON value
    assert text.count("cat sat") == 1 and dec.stop == "grammar"
    # and the KV state matches what was returned: the next call sees the same logits as a
    # fresh evaluation of the same prompt
    follow = line + "\n" + dec.text + "\n"
    warm = cpu.logits(follow)
    cpu.reset()
    cold = cpu.logits(follow)
    assert int(warm.argmax()) == int(cold.argmax())
