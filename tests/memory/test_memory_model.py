"""Done-when of the memory hierarchy, on the real model and the real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.cpu.llama import LlamaCPU
from llmos.kernel.boot import Kernel
from llmos.memory.chroma import ChromaDisk
from llmos.trace import Paged

pytestmark = pytest.mark.model

PEOPLE = ["Alice", "Bruno", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun"]
TOPICS = [
    ("favourite fruit", ["mango", "plum", "kiwi", "fig", "lime", "pear"]),
    ("home town", ["Porto", "Tartu", "Leeds", "Kyoto", "Lagos", "Quito"]),
    ("job", ["baker", "pilot", "nurse", "welder", "teacher", "architect"]),
    ("hobby", ["chess", "rowing", "pottery", "karaoke", "birding", "fencing"]),
    ("car", ["a red van", "a green jeep", "a blue bike", "a grey sedan", "no car", "a taxi"]),
    ("pet", ["a parrot", "a tortoise", "a ferret", "two cats", "a goldfish", "a beagle"]),
]


def _facts() -> list[str]:
    return [
        f"Note: {person} told me that {person}'s {what} is {values[(i + j) % len(values)]}."
        for i, (what, values) in enumerate(TOPICS)
        for j, person in enumerate(PEOPLE)
    ]


def test_sixty_facts_in_1024_tokens_and_an_early_one_comes_back(
    cpu: LlamaCPU, tmp_path: Path
) -> None:
    kernel = Kernel(cpu, disk=ChromaDisk(tmp_path / "disk"), peripherals=[])
    proc = kernel.spawn(ram_tokens=1024)
    facts = _facts()
    assert len(facts) == 60
    for fact in facts:
        kernel.feed(proc, fact)
        assert proc.ram.tokens <= proc.ram.budget
    assert proc.stats.page_outs > 20
    assert facts[1] not in [p.text for p in proc.ram]  # Bruno's fruit was paged out
    reply = kernel.run(proc, "What is Bruno's favourite fruit?")
    assert proc.ram.tokens <= proc.ram.budget
    ins = [e for e in reply.trace if isinstance(e, Paged) and e.direction == "in"]
    recalled = [p.text for p in proc.ram if p.paged_in]
    assert ins and any("Bruno's favourite fruit is plum" in t for t in recalled)
    assert "plum" in reply.text.lower()
