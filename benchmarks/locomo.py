"""LoCoMo evidence recall: can disk search page the right dialogue turn back in?

Each LoCoMo conversation is written to a ``ChromaDisk`` as one page per dialogue turn (one
process id per conversation). The page text carries the speaker, the session date and, when
the turn shared a photo, its caption; the page's ``source`` records where the turn came from
(``locomo10.json#conv-26/D1:3``), and that provenance is what recall is scored on.
For every non-adversarial question (categories 1-4) that lists evidence, the disk pages in
k=5 pages of that conversation; a question counts as recalled when any evidence turn is among
them. In the same run: a BM25 baseline (``rank_bm25`` over ``speaker: text``, lower-cased
words, no stemming) over the same turns, and two ablations of the disk's own search (dense
only; hybrid without neighbour spreading). Page-in latency is the wall time of one
``Disk.search`` call (embedding the question included).

Data: ``$LLMOS_DATA/locomo/locomo10.json``, else ``<repo>/../shared/data/locomo/``
(CC BY-NC 4.0; not shipped with llmos). Evidence ids are ``D<session>:<turn>``; a few are
malformed upstream (several packed into one string, or pointing at no turn): they are split on
``;`` and spaces, and ids that match no turn simply never match.

Run: ``python -m benchmarks.locomo [--limit N] [--k 5] [--json] [--smoke]`` (``--smoke``: the
first 80 turns of one conversation and its questions about them, in seconds; CI runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rank_bm25 import BM25Okapi
from rich.console import Console
from rich.progress import Progress

from benchmarks._common import add_smoke_arg, data_dir
from llmos.memory.chroma import ChromaDisk
from llmos.memory.embed import MiniLMEmbedder
from llmos.memory.page import Page

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Conversation:
    """One LoCoMo sample: its turns as pages and its scored questions."""

    sample: str
    pages: list[Page]
    dia_ids: list[str]
    baseline_texts: list[str]  # "speaker: text" of each turn, for the BM25 baseline
    questions: list[tuple[str, set[str], int]] = field(default_factory=list)


def data_file() -> Path:
    """locomo10.json under $LLMOS_DATA or ../shared/data."""
    path = data_dir() / "locomo" / "locomo10.json"
    if not path.is_file():
        sys.exit(f"LoCoMo data not found at {path}: set LLMOS_DATA to the shared data folder")
    return path


def _when(stamp: str) -> float:
    """Session timestamps look like '1:56 pm on 8 May, 2023'; unparsable ones sort first."""
    try:
        return datetime.strptime(stamp.strip(), "%I:%M %p on %d %B, %Y").timestamp()
    except ValueError:
        return 0.0


def load(path: Path, limit: int | None) -> list[Conversation]:
    """Turns become pages (pid = conversation index + 1); questions keep their evidence ids."""
    out = []
    for n, sample in enumerate(json.loads(path.read_text())[:limit]):
        conv = sample["conversation"]
        sessions = sorted(int(key.split("_")[1]) for key, value in conv.items()
                          if re.fullmatch(r"session_\d+", key) and isinstance(value, list))
        pages, dia_ids, plain = [], [], []
        for s in sessions:
            date = conv.get(f"session_{s}_date_time", "")
            start = _when(date)
            for t, turn in enumerate(conv[f"session_{s}"]):
                text = f"{turn['speaker']} ({date}): {turn['text']}"
                if turn.get("blip_caption"):
                    text += f" [shares a photo: {turn['blip_caption']}]"
                pages.append(Page(
                    id=f"{sample['sample_id']}-{turn['dia_id']}", pid=n + 1, text=text,
                    source=f"locomo10.json#{sample['sample_id']}/{turn['dia_id']}",
                    created=start + t, last_used=start + t,
                ))
                dia_ids.append(turn["dia_id"])
                plain.append(f"{turn['speaker']}: {turn['text']}")
        item = Conversation(sample["sample_id"], pages, dia_ids, plain)
        for qa in sample["qa"]:
            evidence = {part for ev in qa.get("evidence", []) for part in re.split(r"[;\s]+", ev)
                        if part}
            if qa["category"] != 5 and evidence:
                item.questions.append((qa["question"], evidence, qa["category"]))
        out.append(item)
    return out


def _head(conv: Conversation, turns: int) -> Conversation:
    """The first ``turns`` turns of a conversation and the questions whose evidence is in them."""
    kept = set(conv.dia_ids[:turns])
    return Conversation(
        conv.sample, conv.pages[:turns], conv.dia_ids[:turns], conv.baseline_texts[:turns],
        [q for q in conv.questions if q[1] <= kept],
    )


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _dia(page: Page) -> str:
    return page.source.rsplit("/", 1)[-1]


def run(conversations: list[Conversation], k: int, disk_path: Path) -> dict[str, Any]:
    """Write every conversation, then score each question against every method."""
    disk = ChromaDisk(disk_path, embedder=MiniLMEmbedder(threads=2))
    methods = ("hybrid", "bm25", "dense", "no_neighbours")
    hits = {m: 0 for m in methods}
    by_category: dict[int, list[int]] = {}
    latencies: list[float] = []
    total = sum(len(c.questions) for c in conversations)
    with Progress(console=Console(stderr=True), transient=True) as bar:
        feed = bar.add_task("feeding turns", total=sum(len(c.pages) for c in conversations))
        for conv in conversations:
            for start in range(0, len(conv.pages), 64):
                disk.write(conv.pages[start:start + 64])
                bar.advance(feed, len(conv.pages[start:start + 64]))
        ask = bar.add_task("paging in", total=total)
        for conv in conversations:
            # Baseline: rank_bm25 over "speaker: text" of the same turns.
            bm25 = BM25Okapi([_words(t) for t in conv.baseline_texts])
            pid = conv.pages[0].pid
            for question, evidence, category in conv.questions:
                t0 = time.perf_counter()
                found = disk.search(question, k=k, pid=pid)
                latencies.append((time.perf_counter() - t0) * 1000)
                ok = bool({_dia(h.page) for h in found} & evidence)
                hits["hybrid"] += ok
                by_category.setdefault(category, [0, 0])
                by_category[category][0] += ok
                by_category[category][1] += 1
                top = np.argsort(-bm25.get_scores(_words(question)))[:k]
                hits["bm25"] += bool({conv.dia_ids[i] for i in top} & evidence)
                disk.hybrid = False
                hits["dense"] += bool({_dia(h.page) for h in disk.search(
                    question, k=k, pid=pid)} & evidence)
                disk.hybrid, disk.neighbour_weight = True, 0.0
                hits["no_neighbours"] += bool({_dia(h.page) for h in disk.search(
                    question, k=k, pid=pid)} & evidence)
                disk.neighbour_weight = 0.3
                bar.advance(ask)
    latencies.sort()
    return {
        "conversations": len(conversations),
        "pages": disk.count(),
        "questions": total,
        "k": k,
        "recall_at_5": round(hits["hybrid"] / total, 4),
        "bm25_recall_at_5": round(hits["bm25"] / total, 4),
        "dense_recall_at_5": round(hits["dense"] / total, 4),
        "hybrid_no_neighbours_recall_at_5": round(hits["no_neighbours"] / total, 4),
        "recall_by_category": {str(c): round(h / n, 4)
                               for c, (h, n) in sorted(by_category.items())},
        "page_in_p50_ms": round(statistics.median(latencies), 2),
        "page_in_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
    }


def main() -> None:
    """Parse arguments, run, print a table (and the JSON object last with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="first N conversations only")
    parser.add_argument("--k", type=int, default=5, help="pages paged in per question")
    parser.add_argument("--disk", type=Path, default=None, help="store folder (default: temp)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    add_smoke_arg(parser)
    args = parser.parse_args()
    conversations = load(data_file(), 1 if args.smoke else args.limit)
    if args.smoke:
        conversations = [_head(c, 80) for c in conversations]
    with tempfile.TemporaryDirectory(prefix="llmos-locomo-") as tmp:
        result = run(conversations, args.k, args.disk or Path(tmp) / "disk")
    console = Console()
    console.print(f"LoCoMo: {result['conversations']} conversations, {result['pages']} pages, "
                  f"{result['questions']} questions (categories 1-4 with evidence), k={args.k}")
    for key in ("recall_at_5", "bm25_recall_at_5", "dense_recall_at_5",
                "hybrid_no_neighbours_recall_at_5"):
        console.print(f"  {key:34s} {result[key]:.4f}")
    console.print(f"  recall by category (1 multi-hop, 2 temporal, 3 open, 4 single-hop): "
                  f"{result['recall_by_category']}")
    console.print(f"  page-in latency: median {result['page_in_p50_ms']} ms, "
                  f"p95 {result['page_in_p95_ms']} ms")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
