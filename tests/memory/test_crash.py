"""SIGKILL in the middle of paging out loses nothing that was acknowledged (a real subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from llmos.memory.chroma import ChromaDisk

CHILD = textwrap.dedent(
    """
    import sys
    from llmos.kernel.boot import Kernel
    from llmos.trace import Paged
    from llmos.memory.chroma import ChromaDisk
    from llmos.params import Params
    from llmos.testing import ScriptedCPU

    disk = ChromaDisk(sys.argv[1])
    kernel = Kernel(ScriptedCPU([]), disk=disk, peripherals=[], params=Params(summary_tokens=0))
    proc = kernel.spawn(ram_tokens=700)
    print("PID", proc.pid, flush=True)
    for i in range(100000):
        text = f"Entry {i}: the courier delivered parcel number {i * 7919} to dock {i % 13}."
        for event in kernel.feed(proc, text):
            if isinstance(event, Paged) and event.direction == "out":
                print("ACK", ",".join(event.page_ids), flush=True)
    """
)


def test_sigkill_during_page_out_loses_no_acknowledged_page(tmp_path: Path) -> None:
    store = tmp_path / "disk"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    acked: list[str] = []
    pid = None
    assert child.stdout is not None
    try:
        for line in child.stdout:
            if line.startswith("PID"):
                pid = int(line.split()[1])
            elif line.startswith("ACK"):
                acked += [i for i in line.split()[1].split(",") if i]
                if len(acked) >= 40:  # the child is paging out again right now
                    break
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL, "the child ended before it was killed"
    assert pid is not None and acked
    disk = ChromaDisk(store)  # reopen what the killed process left
    missing = [i for i in acked if disk.get(i) is None]
    assert missing == []
    for page_id in acked[:5]:
        page = disk.get(page_id)
        assert page is not None and page.pid == pid and page.text.startswith("Entry ")
