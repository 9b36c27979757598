"""A process with a small RAM remembers what was paged out, and recalls it when asked.

Shows: a kernel with a disk (chromadb on a temporary folder), a process with 1024 tokens of RAM,
60 short facts fed in (most are paged out to disk, a summary stays resident), then a question
about one of the first facts: demand paging brings it back, and the trace shows the page-in.

Run:
    python examples/02_long_memory.py
"""

from __future__ import annotations

import tempfile

from llmos import Kernel
from llmos.kernel import Paged
from llmos.memory import ChromaDisk

PEOPLE = ["Alice", "Bruno", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun"]
THINGS = [
    ("favourite fruit", ["mango", "plum", "kiwi", "fig", "lime", "pear"]),
    ("home town", ["Porto", "Tartu", "Leeds", "Kyoto", "Lagos", "Quito"]),
    ("pet", ["a parrot", "a tortoise", "a ferret", "two cats", "a goldfish", "a beagle"]),
    ("job", ["baker", "pilot", "nurse", "welder", "teacher", "architect"]),
    ("car", ["a red van", "a green jeep", "a blue bike", "a grey sedan", "no car", "a taxi"]),
    ("hobby", ["chess", "rowing", "pottery", "karaoke", "birding", "fencing"]),
]


def facts() -> list[str]:
    out = []
    for i, (what, values) in enumerate(THINGS):
        for j, person in enumerate(PEOPLE):
            day = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"][(i + j) % 5]
            out.append(
                f"Note from {day}: {person} told me that {person}'s {what} is "
                f"{values[(i + j) % len(values)]}."
            )
    return out  # 60 facts


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        kernel = Kernel(disk=ChromaDisk(folder), peripherals=[])
        proc = kernel.spawn(ram_tokens=1024)
        for fact in facts():
            for event in kernel.feed(proc, fact):
                n, now = len(event.page_ids), event.resident_tokens
                print(f"paged out {n} pages; RAM now {now} tokens")
        print(f"RAM holds {proc.ram.tokens} of {proc.ram.budget} tokens; "
              f"{proc.stats.page_outs} pages are on disk")
        question = "What is Alice's favourite fruit?"
        reply = kernel.run(proc, question)
        for event in reply.trace:
            if isinstance(event, Paged) and event.direction == "in":
                recalled = [p.text for p in proc.ram if p.id in event.page_ids]
                print(f"paged in {event.page_ids}: {recalled}")
        print(f"Q: {question}\nA: {reply.text}")
        print(f"stats: {proc.stats.as_dict()}")


if __name__ == "__main__":
    main()
