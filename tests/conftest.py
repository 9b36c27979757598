"""Shared fixtures: real models loaded once per test session, and the public benchmark data.

Two real CPUs, each loaded at most once per session: ``cpu`` is the default, tiny model (Gemma 3
270M), for tests about the kernel (grammar, KV reuse, switching, paging), where a small fast
model proves the mechanism; ``agent_cpu`` is the instruction-tuned candidate (Qwen2.5-Coder
0.5B on the chat path), for tests about what an agent gets done (examples, browsing, files),
where the answer depends on the model's quality.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from benchmarks._common import find_data

if TYPE_CHECKING:
    from llmos.cpu.llama import LlamaCPU

ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path | None:
    """Where the public benchmark and security data lives: $LLMOS_DATA, or ../shared/data."""
    return find_data()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder; tests that need it skip with a reason where it is absent."""
    root = data_root()
    if root is None:
        pytest.skip("benchmark data not found: set LLMOS_DATA to the shared data folder")
    return root


@pytest.fixture(scope="session")
def _session_cpu() -> Iterator[LlamaCPU]:
    from llmos.cpu.llama import LlamaCPU

    machine = LlamaCPU.named("tiny")
    yield machine
    machine.close()


@pytest.fixture
def cpu(_session_cpu: LlamaCPU) -> LlamaCPU:
    """The tiny model (Gemma 3 270M), loaded once per session, its KV cache empty for each test.

    llama.cpp's logits depend slightly on how a prompt was split into batches, so greedy
    decoding after a different KV history can choose differently; each test starts from the
    same state, whatever ran before it.
    """
    _session_cpu.reset()
    return _session_cpu


@pytest.fixture(scope="session")
def _session_agent_cpu() -> Iterator[LlamaCPU]:
    from llmos.cpu.llama import LlamaCPU

    machine = LlamaCPU.named("qwen-0.5b")
    yield machine
    machine.close()


@pytest.fixture
def agent_cpu(_session_agent_cpu: LlamaCPU) -> LlamaCPU:
    """The instruct candidate (qwen-0.5b), loaded once per session, its KV cache empty for each
    test."""
    _session_agent_cpu.reset()
    return _session_agent_cpu


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama.cpp server (llama-cpp-python's) on loopback with the tiny model: its /v1 url."""
    from benchmarks._serve import llama_server
    from llmos.cpu.models import model_path

    with llama_server(model_path("tiny"), tmp_path_factory.mktemp("llama-server")) as url:
        yield url


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Chroma server (``chroma run``) on loopback over a fresh folder: its chroma:// url."""
    from benchmarks._serve import chroma_server

    with chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url
