"""Helpers shared by the benchmark scripts: data lookup, sampling, model loading, JSON output.

Every benchmark reads public data from ``$LLMOS_DATA`` (else ``<repo>/../shared/data``), draws
its sample by a fixed rule (every n-th case, from a seeded offset), runs on one CPU that the
caller may share between benchmarks, and, with ``--json``, prints one JSON object as the last
line of its output.

The baseline of each benchmark drives the same ``llama_cpp.Llama`` that the kernel's CPU holds
(one model in memory, same weights, same threads). :func:`borrow_llama` hands it out and puts
the CPU's KV journal back in order afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from llmos.cpu.llama import LlamaCPU
from llmos.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
_T = TypeVar("_T")
_R = TypeVar("_R")


def find_data() -> Path | None:
    """The shared public data folder: ``$LLMOS_DATA``, else ``<repo>/../shared/data``; None."""
    env = os.environ.get("LLMOS_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "data")
    return next((path for path in candidates if path.is_dir()), None)


def data_dir() -> Path:
    """The shared public data folder (see :func:`find_data`); a clear error where it is absent."""
    found = find_data()
    if found is not None:
        return found
    raise UsageError(
        "benchmark data not found: set LLMOS_DATA to the folder holding bfcl/ and gsm8k/",
        code="no-data",
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON Lines file (BFCL's ``.json`` files are JSON Lines too)."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def every_nth(items: Sequence[_T], limit: int | None, *, offset: int = 0) -> list[_T]:
    """A fixed, evenly spread sample: every n-th item from ``offset`` so ``limit`` remain.

    ``limit=None`` keeps everything. The rule never looks at results, so the same arguments
    always give the same cases.
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        return []
    step = len(items) // limit
    return [items[(offset + i * step) % len(items)] for i in range(limit)]


def load_cpu(model: str | Path | None, path: str = "auto") -> LlamaCPU:
    """The default model, a packaged model by name (``tiny``, ``qwen-1.5b``), or a GGUF path;
    ``path`` picks llmos's prompt path: ``auto`` (from the model's metadata), ``chat`` or
    ``plain``."""
    from llmos.cpu.models import MODELS, model_path

    chat = {"auto": None, "chat": True, "plain": False}[path]
    if model is None:
        cpu = LlamaCPU.default()
        if chat is None or chat == (cpu.dialect is not None):
            return cpu
        model = Path(cpu.llama.model_path)
        cpu.close()
    if str(model) in MODELS:
        model = model_path(str(model))
    file = Path(model)
    if not file.is_file():
        known = ", ".join(sorted(MODELS))
        raise UsageError(
            f"--model {str(model)!r} is neither a packaged model ({known}) nor a GGUF file"
        )
    return LlamaCPU(file, chat=chat)


@contextmanager
def borrow_llama(cpu: LlamaCPU, chat_format: str | None = None) -> Iterator[Any]:
    """The CPU's own ``llama_cpp.Llama`` for a baseline call, KV state reset on both sides.

    The high-level API keeps its own record of evaluated tokens; resetting it first makes it
    re-prefill from position 0, and resetting the CPU afterwards makes the kernel do the same.
    """
    llama = cpu.llama
    saved = llama.chat_format
    if chat_format is not None:
        llama.chat_format = chat_format
    llama.reset()
    try:
        yield llama
    finally:
        llama.chat_format = saved
        llama.reset()
        cpu.reset()


SMOKE_CASES = 2  # cases a sampled benchmark runs in its smoke mode


def add_smoke_arg(parser: argparse.ArgumentParser) -> None:
    """``--smoke``: a handful of cases in seconds, so a test in CI proves the benchmark runs."""
    parser.add_argument(
        "--smoke", action="store_true",
        help="a handful of cases, in seconds (CI runs it; the figures mean nothing)",
    )


def add_common_args(parser: argparse.ArgumentParser, *, default_limit: int) -> None:
    """``--limit``, ``--full``, ``--smoke``, ``--offset``, ``--model``, ``--json``,
    ``--no-baseline``."""
    parser.add_argument("--limit", type=int, default=default_limit, help="cases to sample")
    add_smoke_arg(parser)
    parser.add_argument("--full", action="store_true", help="run every case (no sampling)")
    parser.add_argument(
        "--offset", type=int, default=0, help="start of the every-n-th sample (a fixed rule)"
    )
    parser.add_argument(
        "--model", default=None,
        help="a packaged model's name (tiny, qwen-0.5b, qwen-1.5b) or a GGUF path",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line"
    )
    parser.add_argument("--no-baseline", action="store_true", help="run llmos only")
    parser.add_argument(
        "--path", choices=("auto", "chat", "plain"), default="auto",
        help="llmos's prompt path: the chat template (instruct models with tool support) or "
        "the plain transcript; auto decides from the model's metadata",
    )


def sample_limit(ns: argparse.Namespace) -> int | None:
    """The cases to sample from ``add_common_args``' flags (None: every case)."""
    if ns.smoke:
        return SMOKE_CASES
    return None if ns.full else int(ns.limit)


def print_json(obj: object) -> None:
    """Print ``obj`` as one JSON line on stdout (the last line a caller parses)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n")
    sys.stdout.flush()


def last_json_line(text: str) -> dict[str, Any]:
    """The JSON object on the last non-empty line of ``text``."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("no output to parse")
    value = json.loads(lines[-1])
    if not isinstance(value, dict):
        raise ValueError("the last line is not a JSON object")
    return value


def run_both(
    items: Sequence[_T],
    mine: Callable[[_T], _R],
    theirs: Callable[[_T], _R],
    *,
    baseline: bool,
    tick: Callable[[], None] | None,
) -> tuple[list[_R], list[_R]]:
    """Run every item through llmos and (if ``baseline``) the baseline, alternating per item.

    Alternating keeps load on a shared machine from favouring one side; ``tick`` is called
    after each run (a progress bar).
    """
    ours: list[_R] = []
    others: list[_R] = []
    for item in items:
        ours.append(mine(item))
        if tick:
            tick()
        if baseline:
            others.append(theirs(item))
            if tick:
                tick()
    return ours, others
