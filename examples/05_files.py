"""Files: the model lists, reads and writes files inside one jailed folder.

Run it from the repository root (it loads the embedded default model once):

    python examples/05_files.py

What it shows:
- ``FileSystem(root)`` jails every path to a temporary folder (no ``..`` above it, no absolute
  paths, no symlinks), and paths in calls are grounded in what the user or a listing wrote;
- file contents enter RAM as untrusted text with ``fs:<path>`` as provenance;
- ``fs.write`` is a sensitive call: it runs here because the user asked for it before any
  untrusted text was read (each question gets a fresh process, so no taint carries over).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from llmos.errors import RunError
from llmos.kernel.boot import Kernel
from llmos.peripherals.filesystem import FileSystem
from llmos.trace import Called


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "groceries.txt").write_text("Groceries:\n- apples\n- rice\n- coffee\n")
        (root / "trip.txt").write_text("Train to Lyon leaves on Friday at 7:40 from platform 4.\n")
        kernel = Kernel(peripherals=[FileSystem(root)])
        questions = [
            "When is the train in trip.txt?",
            "Save the line 'water the plants' in todo.txt",
        ]
        try:
            for question in questions:
                print(f"Q: {question}")
                try:
                    reply = kernel.run(kernel.spawn(), question)
                    trace, answer = reply.trace, reply.text
                except RunError as exc:  # a small model can loop; its trace says how
                    trace, answer = exc.trace, f"(no answer: {exc})"
                for call in (e for e in trace if isinstance(e, Called)):
                    print(f"  {call.syscall} {call.args} ({call.status})")
                    print(f"    -> {call.result[:200]!r}")
                print(f"A: {answer}\n")
        finally:
            kernel.close()
        todo = root / "todo.txt"
        print("todo.txt now holds:", repr(todo.read_text()) if todo.exists() else "(not written)")


if __name__ == "__main__":
    main()
