"""Scale-out: N kernel processes on one model server vs N in-process models; writers on one Chroma.

Part 1 (CPU): 1, 2 and 4 kernel OS processes, each answering arithmetic turns through the
calculator, all at once. Either every process sends its decoding to one llama.cpp server
(``HTTPCPU``), or every process loads its own in-process model (``LlamaCPU``, the baseline).
Reported per N: agent turns per second (all turns / wall time from the first start to the
last end), p50 and p95 turn latency, and the server's throughput as a ratio of the baseline's.
Every call decoded through the server is checked against its step schema: ``invalid`` counts
the ones that were not valid (the target is 0).

Part 2 (disk): W writer OS processes write pages to one Chroma server at once, in batches,
each recording the ids the server acknowledged; afterwards every acknowledged id is looked up
(``lost`` must be 0). The baseline is one writer alone (pages per second). Pages carry
precomputed unit vectors: this measures the store, not the embedder.

Both servers are started here on loopback (``python -m llama_cpp.server``, ``chroma run``) and
stopped at the end. ``--smoke`` runs N = 1, 2 with one turn each and two small writers.

    python -m benchmarks.scale [--json] [--smoke] [--turns 3] [--procs 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, print_json
from benchmarks._serve import chroma_server, llama_server

_QUESTIONS = [(a, b) for a in (37, 408, 1234, 56789, 98765) for b in (12, 61, 977, 4096)]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    at = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[at]


# -- workers (run as `python -m benchmarks.scale --worker ...` in their own OS process) ------


def _cpu_worker(kind: str, url: str, index: int, turns: int) -> dict[str, Any]:
    from llmos.cpu.http import HTTPCPU
    from llmos.cpu.llama import LlamaCPU
    from llmos.kernel.boot import Kernel
    from llmos.peripherals.calculator import Calculator

    cpu: Any = HTTPCPU(url) if kind == "server" else LlamaCPU.default(n_threads=1)
    kernel = Kernel(cpu, peripherals=[Calculator()])
    print("ready", flush=True)
    sys.stdin.readline()  # the parent starts every worker at once
    started = time.time()
    latencies, exact = [], 0
    for t in range(turns):
        a, b = _QUESTIONS[(index * turns + t) % len(_QUESTIONS)]
        begin = time.perf_counter()
        reply = kernel.run(kernel.spawn(), f"What is {a} * {b}?")
        latencies.append(time.perf_counter() - begin)
        exact += str(a * b) in reply.text
    return {"start": started, "end": time.time(), "latencies": latencies, "exact": exact,
            "calls": getattr(cpu, "calls", 0), "invalid": getattr(cpu, "invalid", 0)}


def _disk_worker(url: str, collection: str, index: int, pages: int) -> dict[str, Any]:
    import numpy as np

    from llmos.memory.chroma import ChromaDisk
    from llmos.memory.page import Page

    disk = ChromaDisk.connect(url, collection=collection)
    rng = np.random.default_rng(index)
    print("ready", flush=True)
    sys.stdin.readline()
    started, acked = time.time(), []
    for first in range(0, pages, 10):
        batch = [Page(id=f"w{index}p{i:05d}", pid=index + 1, text=f"writer {index} fact {i}")
                 for i in range(first, min(pages, first + 10))]
        vectors = rng.standard_normal((len(batch), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        disk.write(batch, vectors=vectors)
        acked += [p.id for p in batch]
    return {"start": started, "end": time.time(), "acked": acked}


def _fleet(argvs: list[list[str]]) -> list[dict[str, Any]]:
    """Start every worker, wait until all are ready, release them at once, collect results."""
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.scale", "--worker", *argv],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for argv in argvs]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"a worker failed to start: {line!r} (exit {proc.wait()})")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"a worker failed with exit {proc.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _cpu_row(results: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [x for r in results for x in r["latencies"]]
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {
        "turns": len(latencies), "exact": sum(r["exact"] for r in results),
        "turns_per_s": round(len(latencies) / wall, 4), "wall_s": round(wall, 2),
        "p50_s": round(statistics.median(latencies), 2),
        "p95_s": round(_percentile(latencies, 0.95), 2),
        "calls": sum(r["calls"] for r in results), "invalid": sum(r["invalid"] for r in results),
    }


def run_cpu(url: str, procs: list[int], turns: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in procs:
        row: dict[str, Any] = {}
        for kind in ("server", "local"):
            results = _fleet([["cpu", kind, url, str(i), str(turns)] for i in range(n)])
            row[kind] = _cpu_row(results)
            print(f"{n} kernel process(es), {kind:6}: {row[kind]['turns_per_s']:.3f} turns/s, "
                  f"p50 {row[kind]['p50_s']:.1f} s, p95 {row[kind]['p95_s']:.1f} s, "
                  f"exact {row[kind]['exact']}/{row[kind]['turns']}", file=sys.stderr)
        row["server_vs_local"] = round(row["server"]["turns_per_s"] /
                                       row["local"]["turns_per_s"], 3)
        out[str(n)] = row
    return out


def run_disk(url: str, writers: int, pages: int) -> dict[str, Any]:
    from llmos.memory.chroma import ChromaDisk

    out: dict[str, Any] = {}
    for label, n in (("single", 1), ("concurrent", writers)):
        name = f"scale_{label}_{int(time.time())}"
        results = _fleet([["disk", url, name, str(i), str(pages)] for i in range(n)])
        acked = [i for r in results for i in r["acked"]]
        wall = max(r["end"] for r in results) - min(r["start"] for r in results)
        disk = ChromaDisk.connect(url, collection=name)
        stored = {p.id for p in disk.list(limit=len(acked) + 1000)}
        out[label] = {"writers": n, "acked": len(acked), "stored": disk.count(),
                      "lost": len(set(acked) - stored),
                      "pages_per_s": round(len(acked) / wall, 1)}
        print(f"{n} writer(s): {len(acked)} pages acknowledged, {out[label]['lost']} lost, "
              f"{out[label]['pages_per_s']:.0f} pages/s", file=sys.stderr)
    out["concurrent_vs_single"] = round(out["concurrent"]["pages_per_s"] /
                                        out["single"]["pages_per_s"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--smoke", action="store_true", help="a handful of cases, for CI")
    parser.add_argument("--turns", type=int, default=3, help="turns per kernel process")
    parser.add_argument("--procs", default="1,2,4", help="kernel process counts to run")
    parser.add_argument("--writers", type=int, default=4, help="concurrent Chroma writers")
    parser.add_argument("--pages", type=int, default=500, help="pages per writer")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.worker:
        role, *rest = ns.worker
        if role == "cpu":
            result = _cpu_worker(rest[0], rest[1], int(rest[2]), int(rest[3]))
        else:
            result = _disk_worker(rest[0], rest[1], int(rest[2]), int(rest[3]))
        print(json.dumps(result), flush=True)
        return 0
    procs = [1, 2] if ns.smoke else [int(n) for n in ns.procs.split(",")]
    turns = 1 if ns.smoke else ns.turns
    writers, pages = (2, 20) if ns.smoke else (ns.writers, ns.pages)
    from llmos.cpu.models import model_path

    with tempfile.TemporaryDirectory(prefix="llmos-scale-") as tmp:
        folder = Path(tmp)
        with chroma_server(folder) as store:
            disk = run_disk(store, writers, pages)
        with llama_server(model_path("tiny"), folder) as server:  # as measured on docs
            cpu = run_cpu(server, procs, turns)
    calls = sum(row["server"]["calls"] for row in cpu.values())
    invalid = sum(row["server"]["invalid"] for row in cpu.values())
    result = {"cpu": cpu, "disk": disk, "turns_per_process": turns,
              "server_calls": calls, "server_invalid_calls": invalid}
    for n, row in cpu.items():
        print(f"N={n}: server {row['server']['turns_per_s']:.3f} turns/s "
              f"(p50 {row['server']['p50_s']} s, p95 {row['server']['p95_s']} s) vs in-process "
              f"{row['local']['turns_per_s']:.3f} turns/s (p50 {row['local']['p50_s']} s, "
              f"p95 {row['local']['p95_s']} s): ratio {row['server_vs_local']}")
    print(f"disk: {writers} writers, {disk['concurrent']['acked']} acknowledged, "
          f"{disk['concurrent']['lost']} lost; {disk['concurrent']['pages_per_s']} pages/s vs "
          f"{disk['single']['pages_per_s']} alone: ratio {disk['concurrent_vs_single']}")
    print(f"server calls valid: {calls - invalid}/{calls}")
    if ns.json:
        print_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
