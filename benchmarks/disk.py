"""Disk page-in latency at 10k and 100k pages, beside brute-force cosine over the same vectors.

A synthetic corpus (short sentences from a seeded template grammar, so every run builds the same
pages) is spread over ``--pids`` processes and written to a fresh ``ChromaDisk``. Then each of
``--queries`` questions is paged in as the pager would: ``Disk.search(query, k=5, pid=p)``,
which embeds the query, runs the filtered HNSW search and the keyword ranking, and fuses them.
The baseline in the same run is exact search: embed the query, then numpy cosine over the
vectors of that pid's pages and ``argpartition`` for the top 5. The report gives median and p95
in ms for the disk (hybrid, and dense only), the baseline, their ratio, and how many of the exact
top 5 the dense HNSW search returns (recall of ``ef_search``).

Embedding 100k pages takes minutes on two cores, so the vectors are cached by corpus size and
seed in ``--cache`` (default: a folder in the system temp dir) and reused by later runs.

Run: ``python -m benchmarks.disk [--sizes 10000,100000] [--json] [--smoke]`` (``--smoke``: 200
pages over 2 processes, 10 page-ins, in seconds; CI runs it, its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import Progress

from benchmarks._common import add_smoke_arg
from llmos.memory.chroma import ChromaDisk
from llmos.memory.embed import MiniLMEmbedder
from llmos.memory.page import Page

_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kai",
          "Lena", "Malik", "Nora", "Omar", "Priya")
_VERBS = ("booked", "cancelled", "painted", "repaired", "planned", "sold", "bought", "visited",
          "photographed", "cooked", "wrote about", "forgot", "found", "lost", "borrowed", "fixed")
_THINGS = ("a red bicycle", "the kitchen table", "a trip to Kyoto", "a birthday cake",
           "the garden fence", "a violin", "an old camera", "the quarterly report", "a sailboat",
           "tickets for the opera", "a vegetable patch", "the attic window", "a rescue puppy",
           "a chess set", "a mountain cabin", "the school play", "a pottery class", "a used car")
_WHEN = ("on Monday", "last spring", "in August", "yesterday", "before the storm",
         "after the wedding", "during the holidays", "at dawn", "next weekend", "in 2019")
_WHY = ("because it was cheap", "for a friend", "to learn something new", "on a whim",
        "after a long debate", "to surprise the kids", "for the third time", "with help")


def corpus(n: int, seed: int) -> list[str]:
    """``n`` distinct short sentences from a seeded template grammar."""
    rng = random.Random(seed)
    return [f"{rng.choice(_NAMES)} {rng.choice(_VERBS)} {rng.choice(_THINGS)} "
            f"{rng.choice(_WHEN)} {rng.choice(_WHY)} (note {i})." for i in range(n)]


def questions(n: int, seed: int) -> list[str]:
    """Questions in the corpus's vocabulary, worded differently from any page."""
    rng = random.Random(seed + 1)
    return [f"What did {rng.choice(_NAMES)} do with {rng.choice(_THINGS)} {rng.choice(_WHEN)}?"
            for _ in range(n)]


def vectors(texts: list[str], cache: Path, tag: str, bar: Progress) -> NDArray[np.float32]:
    """Embeddings of ``texts``, cached on disk under ``tag``."""
    path = cache / f"{tag}.npy"
    if path.is_file():
        got: NDArray[np.float32] = np.load(path)
        if got.shape == (len(texts), 384):
            return got
    embedder = MiniLMEmbedder(threads=2, batch_size=64)
    out = np.zeros((len(texts), 384), dtype=np.float32)
    task = bar.add_task(f"embedding {len(texts)} pages", total=len(texts))
    for start in range(0, len(texts), 1024):
        out[start:start + 1024] = embedder.embed(texts[start:start + 1024])
        bar.advance(task, min(1024, len(texts) - start))
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def _stats(ms: list[float]) -> tuple[float, float]:
    ms = sorted(ms)
    return round(statistics.median(ms), 2), round(ms[int(0.95 * (len(ms) - 1))], 2)


def measure(size: int, *, pids: int, n_queries: int, seed: int, cache: Path) -> dict[str, Any]:
    """Build a disk of ``size`` pages and time page-ins against the exact baseline."""
    texts = corpus(size, seed)
    with Progress(console=Console(stderr=True), transient=True) as bar:
        vecs = vectors(texts, cache, f"corpus-{size}-{seed}", bar)
        owner = np.array([i % pids + 1 for i in range(size)])
        with tempfile.TemporaryDirectory(prefix="llmos-bench-disk-") as tmp:
            embedder = MiniLMEmbedder()  # the disk's default: one thread, as in a kernel
            disk = ChromaDisk(Path(tmp) / "disk", embedder=embedder)
            task = bar.add_task(f"writing {size} pages", total=size)
            t0 = time.perf_counter()
            for start in range(0, size, 1000):
                stop = min(size, start + 1000)
                disk.write([Page(id=f"p{i}", pid=int(owner[i]), text=texts[i], created=float(i))
                            for i in range(start, stop)], vectors=vecs[start:stop])
                bar.advance(task, stop - start)
            write_s = time.perf_counter() - t0
            asks = questions(n_queries, seed)
            t0 = time.perf_counter()
            for p in range(1, pids + 1):  # warm-up: build each pid's keyword index once
                disk.search(asks[0], k=5, pid=p)
            index_s = time.perf_counter() - t0
            rows = {p: np.flatnonzero(owner == p) for p in range(1, pids + 1)}
            hybrid, dense, exact, overlap = [], [], [], []
            task = bar.add_task("paging in", total=n_queries)
            for i, ask in enumerate(asks):
                pid = i % pids + 1
                t0 = time.perf_counter()
                disk.search(ask, k=5, pid=pid)
                hybrid.append((time.perf_counter() - t0) * 1000)
                disk.hybrid = False
                t0 = time.perf_counter()
                got = disk.search(ask, k=5, pid=pid)
                dense.append((time.perf_counter() - t0) * 1000)
                disk.hybrid = True
                t0 = time.perf_counter()
                q = embedder.embed([ask])[0]
                mine = rows[pid]
                sims = vecs[mine] @ q
                top = mine[np.argpartition(-sims, 5)[:5]]
                exact.append((time.perf_counter() - t0) * 1000)
                overlap.append(len({f"p{j}" for j in top} & {h.page.id for h in got}) / 5)
                bar.advance(task)
    p50, p95 = _stats(hybrid)
    d50, d95 = _stats(dense)
    b50, b95 = _stats(exact)
    return {"pages": size, "pids": pids, "pages_per_pid": size // pids, "queries": n_queries,
            "write_s": round(write_s, 1), "keyword_index_build_s": round(index_s, 1),
            "page_in_p50_ms": p50, "page_in_p95_ms": p95,
            "dense_only_p50_ms": d50, "dense_only_p95_ms": d95,
            "numpy_exact_p50_ms": b50, "numpy_exact_p95_ms": b95,
            "ratio_p50_vs_numpy": round(p50 / b50, 2),
            "hnsw_recall_at_5_vs_exact": round(statistics.mean(overlap), 4)}


def main() -> None:
    """Parse arguments, measure each size, print a table (and JSON last with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated page counts")
    parser.add_argument("--pids", type=int, default=10, help="processes the pages belong to")
    parser.add_argument("--queries", type=int, default=200, help="page-ins timed per size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "llmos-bench-disk-cache")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    add_smoke_arg(parser)
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.pids, args.queries = "200", 2, 10
    console = Console()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        r = measure(size, pids=args.pids, n_queries=args.queries, seed=args.seed,
                    cache=args.cache)
        results.append(r)
        console.print(
            f"{r['pages']:>7} pages ({r['pages_per_pid']} per pid): page-in median "
            f"{r['page_in_p50_ms']} ms, p95 {r['page_in_p95_ms']} ms | dense only "
            f"{r['dense_only_p50_ms']}/{r['dense_only_p95_ms']} ms | numpy exact "
            f"{r['numpy_exact_p50_ms']}/{r['numpy_exact_p95_ms']} ms | ratio "
            f"{r['ratio_p50_vs_numpy']}x | HNSW recall@5 vs exact "
            f"{r['hnsw_recall_at_5_vs_exact']} | write {r['write_s']} s, keyword index "
            f"{r['keyword_index_build_s']} s")
    if args.json:
        last = results[-1]
        print(json.dumps({"sizes": results, "page_in_p50_ms": last["page_in_p50_ms"],
                          "page_in_p95_ms": last["page_in_p95_ms"]}))


if __name__ == "__main__":
    main()
