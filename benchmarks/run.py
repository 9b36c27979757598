"""Run every benchmark on one model and write the results page ``docs/benchmarks.md``.

``python -m benchmarks.run`` runs a small default sample (every n-th case: a few per BFCL
category and a few GSM8K problems) that finishes in minutes on a small machine; ``--full``
runs every case; ``--limit N`` sets the sample per BFCL category and for GSM8K. One model is
loaded and shared by llmos and the baselines (same weights, same threads). The page holds one
table per benchmark with llmos and the baseline side by side, the sample, the model and the
date, and two plots in ``docs/img/``. With ``--json`` the last line is one JSON object.

``--smoke`` runs one case of two BFCL categories and one GSM8K problem and writes the page to a
temporary folder (unless ``--docs`` says where), in seconds: CI runs it to prove the whole
pipeline works; its figures mean nothing.

Run: ``python -m benchmarks.run [--limit N | --full | --smoke] [--model NAME|PATH] [--json]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks import bfcl, gsm8k
from benchmarks._common import (
    ROOT,
    add_smoke_arg,
    data_dir,
    every_nth,
    load_cpu,
    print_json,
    read_jsonl,
)

DEFAULT_BFCL = 5  # cases per BFCL category in the default sample
DEFAULT_GSM8K = 10  # GSM8K problems in the default sample


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _rate(summary: dict[str, Any] | None) -> str:
    return "-" if summary is None else f"{summary['calls_per_s']:.2f}"


def _bfcl_table(results: Sequence[dict[str, Any]]) -> str:
    head = (
        "| category | cases | llmos accuracy | baseline accuracy | llmos valid calls | "
        "baseline valid calls | llmos unknown-function calls | baseline unknown-function calls "
        "| llmos calls/s | baseline calls/s | llmos errors | baseline errors |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in results:
        m, b = r["llmos"], r.get("baseline")
        rows.append(
            f"| {r['category']} | {m['cases']} | {_pct(m['accuracy'])} | "
            f"{_pct(b['accuracy']) if b else '-'} | {_pct(m['valid_rate'])} ({m['calls']}) | "
            f"{_pct(b['valid_rate']) + ' (' + str(b['calls']) + ')' if b else '-'} | "
            f"{m['unknown_calls']} | {b['unknown_calls'] if b else '-'} | "
            f"{m['calls_per_s']:.2f} | {_rate(b)} | "
            f"{m['errors']} | {b['errors'] if b else '-'} |"
        )
    return head + "\n".join(rows) + "\n"


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven if neither
    system were better (ties left out)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def bfcl_totals(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy over all categories run, over those that need a call, and the paired split."""

    def pooled(rows: Sequence[dict[str, Any]], system: str) -> tuple[int, int]:
        marks = [m for r in rows for m in r[system]["correct"]]
        return sum(marks), len(marks)

    out: dict[str, Any] = {}
    calling = [r for r in results if r["category"] != "irrelevance"]
    for name, rows in (("all", results), ("needs_a_call", calling)):
        right, n = pooled(rows, "llmos")
        row: dict[str, Any] = {"cases": n, "llmos_correct": right}
        if rows and all("baseline" in r for r in rows):
            row["baseline_correct"] = pooled(rows, "baseline")[0]
            pairs = [
                (a, b)
                for r in rows
                for a, b in zip(r["llmos"]["correct"], r["baseline"]["correct"], strict=True)
            ]
            row["only_llmos"] = sum(a and not b for a, b in pairs)
            row["only_baseline"] = sum(b and not a for a, b in pairs)
            row["sign_test_p"] = sign_test(row["only_llmos"], row["only_baseline"])
        out[name] = row
    return out


def _totals_table(totals: dict[str, Any]) -> str:
    head = (
        "| pool | cases | llmos correct | baseline correct | only llmos right "
        "| only baseline right | sign test p |\n|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for name, label in (("all", "all categories"), ("needs_a_call", "all but irrelevance")):
        t = totals[name]
        if "baseline_correct" not in t:
            rows.append(f"| {label} | {t['cases']} | {t['llmos_correct']} | - | - | - | - |")
            continue
        rows.append(
            f"| {label} | {t['cases']} | "
            f"{t['llmos_correct']} ({_pct(t['llmos_correct'] / t['cases'])}) "
            f"| {t['baseline_correct']} ({_pct(t['baseline_correct'] / t['cases'])}) "
            f"| {t['only_llmos']} | {t['only_baseline']} | {t['sign_test_p']:.3f} |"
        )
    return head + "\n".join(rows) + "\n"


def _gsm8k_table(r: dict[str, Any]) -> str:
    m, b = r["llmos"], r.get("baseline")
    return (
        "| system | problems | exact match | answers that used a device | seconds per problem "
        "| errors |\n"
        "|---|---|---|---|---|---|\n"
        f"| llmos (calculator + python) | {m['cases']} | {_pct(m['accuracy'])} | "
        f"{_pct(m['device_share'])} | {m['seconds_per_case']:.1f} | {m['errors']} |\n"
        + (
            f"| baseline (few-shot, direct) | {b['cases']} | {_pct(b['accuracy'])} | - | "
            f"{b['seconds_per_case']:.1f} | {b['errors']} |\n"
            if b
            else ""
        )
    )


def _plots(results: Sequence[dict[str, Any]], gsm: dict[str, Any] | None, img: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    cats = [r["category"] for r in results]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key, title in (
        (axes[0], "accuracy", "BFCL accuracy (AST)"),
        (axes[1], "valid_rate", "BFCL valid-call rate"),
    ):
        xs = range(len(cats))
        ax.bar([x - 0.2 for x in xs], [r["llmos"][key] for r in results], 0.4, label="llmos")
        if all("baseline" in r for r in results):
            ax.bar(
                [x + 0.2 for x in xs],
                [r["baseline"][key] for r in results],
                0.4,
                label="chatml-function-calling",
            )
        ax.set_xticks(list(xs), [c.replace("_", "\n") for c in cats], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(img / "bfcl.png", dpi=110)
    plt.close(fig)
    names.append("bfcl.png")
    if gsm is not None:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        labels = ["llmos\n(calculator + python)"]
        values = [gsm["llmos"]["accuracy"]]
        if "baseline" in gsm:
            labels.append("baseline\n(few-shot, direct)")
            values.append(gsm["baseline"]["accuracy"])
        ax.bar(labels, values, color=["tab:blue", "tab:orange"][: len(values)])
        ax.set_ylim(0, 1.05)
        ax.set_title("GSM8K exact match")
        fig.tight_layout()
        fig.savefig(img / "gsm8k.png", dpi=110)
        plt.close(fig)
        names.append("gsm8k.png")
    return names


def write_page(
    results: Sequence[dict[str, Any]],
    gsm: dict[str, Any] | None,
    *,
    model: str,
    sample: str,
    minutes: float,
    docs: Path,
) -> Path:
    """Write ``docs/benchmarks.md`` and its plots; return the page's path."""
    pngs = _plots(results, gsm, docs / "img")
    today = dt.date.today().isoformat()
    parts = [
        "# Benchmarks\n",
        "Generated by `python -m benchmarks.run`; do not edit by hand.\n",
        f"- model: `{model}`\n- date: {today}\n- sample: {sample}\n"
        f"- wall time of the whole run: {minutes:.1f} min\n",
        "## BFCL v4 (AST categories)\n",
        "llmos: each offered function is mounted as a peripheral built from its schema, with "
        "worked examples made mechanically from that schema (placeholder values, never the "
        "case's question or answer). Baseline: llama-cpp-python `create_chat_completion(..., "
        'tools=..., tool_choice="auto")` with the `chatml-function-calling` handler, greedy, on '
        "the same model. Both scored by the same AST checker (`benchmarks/bfcl.py`). A *valid* "
        "call names an offered function and its arguments validate strictly against the "
        "schema; an *unknown-function* call names none of them. A run that ended in an error "
        "counts as wrong. Calls/s: calls made per second of the system's wall time.\n",
        _bfcl_table(results),
        "Pooled over the categories run, case by case (the sign test counts the cases exactly "
        "one system got right):\n",
        _totals_table(bfcl_totals(results)),
    ]
    if "bfcl.png" in pngs:
        parts.append("![BFCL](img/bfcl.png)\n")
    if gsm is not None:
        parts += [
            "## GSM8K with tools\n",
            "llmos: a kernel process with the calculator and python devices (default program "
            "and worked examples, none from GSM8K). Baseline: the same model answering "
            "directly from a three-problem few-shot prompt (written for the benchmark), greedy. "
            "Exact match on the final integer.\n",
            _gsm8k_table(gsm),
        ]
        if "gsm8k.png" in pngs:
            parts.append("![GSM8K](img/gsm8k.png)\n")
    page = docs / "benchmarks.md"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.run``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="cases per BFCL category and for GSM8K"
    )
    parser.add_argument("--full", action="store_true", help="every case of every benchmark")
    parser.add_argument("--offset", type=int, default=0, help="start of the every-n-th sample")
    parser.add_argument("--categories", default=",".join(bfcl.CATEGORIES), help="BFCL categories")
    parser.add_argument("--no-gsm8k", action="store_true", help="skip GSM8K")
    parser.add_argument("--no-baseline", action="store_true", help="run llmos only")
    parser.add_argument(
        "--model", default=None,
        help="a packaged model's name (tiny, qwen-0.5b, qwen-1.5b) or a GGUF path",
    )
    parser.add_argument("--docs", type=Path, default=None, help="where the page goes")
    add_smoke_arg(parser)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line"
    )
    ns = parser.parse_args(argv)
    if ns.smoke:
        ns.limit, ns.full, ns.categories = 1, False, ",".join(bfcl.CATEGORIES[:2])
        if ns.docs is None:
            ns.docs = Path(tempfile.mkdtemp(prefix="llmos-bench-smoke-"))
    ns.docs = ns.docs or ROOT / "docs"
    cats = [c for c in ns.categories.split(",") if c]
    for c in cats:
        if c not in bfcl.CATEGORIES:
            parser.error(f"unknown category {c!r}; choose from {', '.join(bfcl.CATEGORIES)}")
    bfcl_limit = None if ns.full else (ns.limit or DEFAULT_BFCL)
    gsm_limit = None if ns.full else (ns.limit or DEFAULT_GSM8K)
    systems = 1 if ns.no_baseline else 2
    total = sum(len(every_nth(bfcl.load_category(c), bfcl_limit)) for c in cats)
    if not ns.no_gsm8k:
        total += len(every_nth(read_jsonl(data_dir() / "gsm8k" / "test.jsonl"), gsm_limit))
    console = Console(stderr=True)
    cpu = load_cpu(ns.model)
    started = dt.datetime.now()
    results: list[dict[str, Any]] = []
    gsm: dict[str, Any] | None = None
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=ns.json,
        ) as bar:
            task = bar.add_task("benchmarks", total=total * systems)
            for c in cats:
                bar.update(task, description=f"BFCL {c}")
                results.append(
                    bfcl.run_category(
                        cpu,
                        c,
                        limit=bfcl_limit,
                        offset=ns.offset,
                        baseline=not ns.no_baseline,
                        tick=lambda: bar.advance(task),
                    )
                )
            if not ns.no_gsm8k:
                bar.update(task, description="GSM8K")
                gsm = gsm8k.run(
                    cpu,
                    limit=gsm_limit,
                    offset=ns.offset,
                    baseline=not ns.no_baseline,
                    tick=lambda: bar.advance(task),
                )
    finally:
        model = cpu.name
        cpu.close()
    minutes = (dt.datetime.now() - started).total_seconds() / 60
    sample = (
        "every case"
        if ns.full
        else f"every n-th case from offset {ns.offset}: {bfcl_limit} per BFCL category, "
        f"{gsm_limit} GSM8K problems"
    )
    page = write_page(results, gsm, model=model, sample=sample, minutes=minutes, docs=ns.docs)
    if not ns.json:
        console.print(page.read_text(encoding="utf-8"))
    print_json(
        {
            "model": model,
            "sample": sample,
            "minutes": round(minutes, 2),
            "page": str(page),
            "bfcl": {r["category"]: {k: v for k, v in r.items() if k != "ids"} for r in results},
            "bfcl_totals": bfcl_totals(results) if results else {},
            "gsm8k": {k: v for k, v in (gsm or {}).items() if k != "answers"},
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
