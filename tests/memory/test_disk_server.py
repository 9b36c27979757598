"""Many kernels, one Chroma server: nothing acknowledged is lost, pids stay unique, a process
hibernated by one kernel resumes in another OS process."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from llmos.errors import UsageError
from llmos.kernel.boot import Kernel
from llmos.memory.chroma import ChromaDisk
from llmos.memory.embed import MiniLMEmbedder
from llmos.memory.page import Page
from llmos.testing import ScriptedCPU

FACTS = [
    "The cabin wifi password is pinecone42.",
    "My sister Ana lives in Porto and teaches chemistry.",
    "The flight to Norway leaves on the 14th at 07:10.",
    "I am allergic to peanuts but not to almonds.",
    "Our dog Rex is a beagle who hates thunderstorms.",
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def _name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_connect_takes_chroma_urls() -> None:
    with pytest.raises(UsageError, match="http://host:port"):
        ChromaDisk.connect("ftp://127.0.0.1:1")


def test_local_and_remote_stores_rank_alike(chroma_server: str, tmp_path: Path,
                                            embedder: MiniLMEmbedder) -> None:
    name = _name()
    remote = ChromaDisk.connect(chroma_server, embedder=embedder, collection=name)
    local = ChromaDisk(tmp_path / "disk", embedder=embedder)
    pages = [Page(pid=1, text=t) for t in FACTS]
    remote.write(pages)
    local.write(pages)
    for query in ["what is the wifi password?", "which dog do we have?", "Norway trip"]:
        near = [(h.page.id, round(h.score, 6)) for h in local.search(query, k=3, pid=1)]
        far = [(h.page.id, round(h.score, 6)) for h in remote.search(query, k=3, pid=1)]
        assert near == far
    fresh = ChromaDisk.connect(chroma_server, embedder=embedder, collection=name)
    assert fresh.search("peanuts", k=1)[0].page.text == FACTS[3]


_WRITER = """
import json, sys
from llmos.memory.chroma import ChromaDisk
from llmos.memory.page import Page
url, name, writer, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
disk = ChromaDisk.connect(url, collection=name)
pids = [disk.claim_pid() for _ in range(3)]
print(json.dumps({"pids": pids}), flush=True)
for i in range(0, n, 5):
    batch = [Page(id=f"w{writer}p{j:04d}", pid=pids[0], text=f"writer {writer} fact {j}")
             for j in range(i, min(n, i + 5))]
    disk.write(batch)
    print(json.dumps({"acked": [p.id for p in batch]}), flush=True)
"""


def test_four_kernel_processes_writing_at_once_lose_no_acknowledged_page(
    chroma_server: str, embedder: MiniLMEmbedder
) -> None:
    name, per_writer = _name(), 40
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, chroma_server, name, str(w),
                               str(per_writer)], stdout=subprocess.PIPE, text=True)
             for w in range(4)]
    acked: list[str] = []
    pids: list[int] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0
        for line in out.splitlines():
            record = json.loads(line)
            acked += record.get("acked", [])
            pids += record.get("pids", [])
    assert len(acked) == 4 * per_writer
    assert len(pids) == 12 and len(set(pids)) == 12  # unique across the four kernels
    disk = ChromaDisk.connect(chroma_server, embedder=embedder, collection=name)
    assert disk.count() == len(acked)
    stored = {p.id for p in disk.list(limit=10_000)}
    assert set(acked) <= stored


_RESUMER = """
import json, sys
from llmos.kernel.boot import Kernel
from llmos.memory.chroma import ChromaDisk
from llmos.testing import ScriptedCPU
disk = ChromaDisk.connect(sys.argv[1], collection=sys.argv[2])
cpu = ScriptedCPU(['{"syscall": "answer", "args": {"text": "resumed"}}'])
kernel = Kernel(cpu, disk=disk, peripherals=[])
proc = kernel.resume(int(sys.argv[3]))
texts = [p.text for p in proc.ram]
reply = kernel.run(proc, "Are you there?")
print(json.dumps({"texts": texts, "reply": reply.text, "next": kernel.spawn().pid}))
"""


def test_a_process_hibernated_on_one_host_resumes_on_another(
    chroma_server: str, embedder: MiniLMEmbedder
) -> None:
    name = _name()
    disk = ChromaDisk.connect(chroma_server, embedder=embedder, collection=name)
    kernel = Kernel(ScriptedCPU([]), disk=disk, peripherals=[])
    proc = kernel.spawn()
    kernel.feed(proc, "Remember: the locker code is 4471.")
    kernel.hibernate(proc)
    out = subprocess.run([sys.executable, "-c", _RESUMER, chroma_server, name, str(proc.pid)],
                         capture_output=True, text=True, timeout=300, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "Remember: the locker code is 4471." in got["texts"]
    assert got["reply"] == "resumed"
    assert got["next"] != proc.pid
