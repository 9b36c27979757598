"""Done-when of scale-out: the shell and the memory path through a real llama.cpp server and a
real Chroma server, both started by the session fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmos.cpu.http import HTTPCPU
from llmos.kernel.boot import Kernel
from llmos.memory.chroma import ChromaDisk
from llmos.trace import Paged
from tests.memory.test_memory_model import _facts

pytestmark = pytest.mark.model


def test_shell_answers_through_a_model_server_and_a_chroma_server(
    llama_server: str, chroma_server: str, tmp_path: Path
) -> None:
    history = tmp_path / "history.jsonl"
    history.write_text(
        json.dumps({"text": "Note: my sister Ana lives in Porto and teaches chemistry."}) + "\n"
        + json.dumps({"text": "Note: our dog Rex is a beagle."}) + "\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "llmos", "run", "--json", "--cpu", llama_server,
         "--disk", chroma_server, "--history", str(history), "Which city does Ana live in?"],
        capture_output=True, text=True, timeout=600, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "Porto" in result["answer"]
    assert ChromaDisk.connect(chroma_server).claim_pid() > 1  # the shell's process holds pid 1


def test_facts_paged_out_to_the_server_come_back(llama_server: str, chroma_server: str) -> None:
    cpu = HTTPCPU(llama_server)
    disk = ChromaDisk.connect(chroma_server, collection="memory_acceptance")
    kernel = Kernel(cpu, disk=disk, peripherals=[])
    proc = kernel.spawn(ram_tokens=1024)
    facts = _facts()
    for fact in facts:
        kernel.feed(proc, fact)
        assert proc.ram.tokens <= proc.ram.budget
    assert proc.stats.page_outs > 20
    assert facts[1] not in [p.text for p in proc.ram]  # Bruno's fruit was paged out
    reply = kernel.run(proc, "What is Bruno's favourite fruit?")
    cpu.close()
    ins = [e for e in reply.trace if isinstance(e, Paged) and e.direction == "in"]
    recalled = [p.text for p in proc.ram if p.paged_in]
    assert ins and any("Bruno's favourite fruit is plum" in t for t in recalled)
    assert "plum" in reply.text.lower()
    assert cpu.invalid == 0
