"""Every packaged model loads by its short name and answers a short prompt (real models)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.cpu.llama import LlamaCPU
from llmos.cpu.models import DEFAULT, MODELS, Model, Part
from llmos.errors import UsageError

PROMPT = "Question: What is the capital of France?\nAnswer (one word):"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
          "required": ["city"], "additionalProperties": False}


def _answers(cpu: LlamaCPU) -> None:
    free = cpu.complete(PROMPT, max_tokens=6)
    assert "paris" in free.text.lower(), free.text
    shaped = cpu.complete(PROMPT + ' {"city": "', schema=SCHEMA, max_tokens=40)
    assert shaped.stop == "grammar", shaped


@pytest.fixture(scope="module")
def qwen_15b() -> Iterator[LlamaCPU]:
    machine = LlamaCPU.named("qwen-1.5b", n_ctx=512)
    yield machine
    machine.close()


@pytest.mark.model
def test_tiny_answers(cpu: LlamaCPU) -> None:
    assert cpu.name == Path(MODELS[DEFAULT].file).stem  # the default
    _answers(cpu)


@pytest.mark.model
def test_qwen_05b_answers(agent_cpu: LlamaCPU) -> None:
    assert agent_cpu.name == Path(MODELS["qwen-0.5b"].file).stem
    assert agent_cpu.chat_template  # an instruct model: its GGUF carries a chat template
    _answers(agent_cpu)


@pytest.mark.model
def test_qwen_15b_answers(qwen_15b: LlamaCPU) -> None:
    assert qwen_15b.chat_template
    _answers(qwen_15b)


def test_a_model_whose_parts_are_missing_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ghost = Model(
        name="ghost", title="Ghost-0.1B", file="ghost.gguf",
        parts=(Part("llmos_no_such_part1", "no-such-part1", "1.0", "data/part01.bin"),),
        size=1, sha256="0" * 64, quantisation="Q4_K_M", licence="Apache-2.0",
        licence_file="Apache-2.0.txt", upstream="https://example.org", instruct=True,
        extra="ghost",
    )
    monkeypatch.setitem(MODELS, "ghost", ghost)
    with pytest.raises(UsageError, match=r'pip install "llmos\[ghost\]"'):
        LlamaCPU.named("ghost")
