"""Wrappers hide, rename or gate syscalls of any peripheral, and compose."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from llmos.errors import Fault, UsageError
from llmos.kernel.syscall import SyscallTable
from llmos.peripherals.base import Example, Limits, Peripheral, peripheral, syscall
from llmos.peripherals.filesystem import FileSystem, ReadArgs, WriteArgs
from llmos.peripherals.wrappers import NeedsApproval, Prefixed, ReadOnly
from llmos.testing import run_syscall


class NoteArgs(BaseModel):
    text: str


class Notebook(Peripheral):
    """Keeps notes."""

    name = "notes"
    limits = Limits(timeout_s=3.0, max_output_chars=500)
    examples: ClassVar[tuple[Example, ...]] = (
        Example("What notes are there?", (("notes.show", {"text": ""}, "none"),), "none"),
        Example("Note milk.", (("notes.add", {"text": "milk"}, "ok"),), "done"),
    )

    def __init__(self) -> None:
        self.notes: list[str] = []

    @syscall
    def show(self, args: NoteArgs) -> str:
        """Show the notes."""
        return ", ".join(self.notes) or "none"

    @syscall(sensitive=True)
    def add(self, args: NoteArgs) -> str:
        """Add a note."""
        self.notes.append(args.text)
        return "ok"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_text("alpha")
    return tmp_path


def test_read_only_hides_and_refuses_sensitive_syscalls(root: Path) -> None:
    fs = ReadOnly(FileSystem(root))
    assert isinstance(fs, Peripheral)
    assert set(fs.syscalls()) == {"fs.read", "fs.list", "fs.search"}
    assert fs.name == "fs"
    assert fs.limits == FileSystem.limits
    assert fs.description == FileSystem(root).description
    assert run_syscall(fs, "fs.read", {"path": "a.txt"}).text == "alpha"
    outcome = SyscallTable([fs]).dispatch("fs.write", {"path": "b.txt", "text": "x"})
    assert outcome.status == "fault"
    assert "unknown syscall 'fs.write'" in outcome.text
    with pytest.raises(Fault, match="read-only"):  # even when called past the table
        fs.call("write", WriteArgs(path="b.txt", text="x"))
    assert not (root / "b.txt").exists()


def test_read_only_keeps_only_examples_it_can_run() -> None:
    notes = ReadOnly(Notebook())
    assert [ex.question for ex in notes.examples] == ["What notes are there?"]


def test_read_only_of_an_all_sensitive_device_is_a_usage_error() -> None:
    @peripheral(sensitive=True)
    def send(to: str) -> str:
        """Send a message."""
        return "sent"

    with pytest.raises(UsageError, match="no syscall"):
        ReadOnly(send())


def test_prefixed_renames_so_two_folders_mount_together(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "x.txt").write_text("first")
    (tmp_path / "two" / "x.txt").write_text("second")
    docs = Prefixed(FileSystem(tmp_path / "one"), "docs_")
    logs = Prefixed(FileSystem(tmp_path / "two"), "logs_")
    assert docs.name == "docs_fs"
    assert set(docs.syscalls()) == {"docs_fs.read", "docs_fs.write", "docs_fs.list",
                                    "docs_fs.search"}
    assert docs.syscalls()["docs_fs.write"].sensitive
    with pytest.raises(UsageError, match="both define"):
        SyscallTable([FileSystem(tmp_path / "one"), FileSystem(tmp_path / "two")])
    table = SyscallTable([docs, logs])
    first = table.dispatch("docs_fs.read", {"path": "x.txt"})
    second = table.dispatch("logs_fs.read", {"path": "x.txt"})
    assert (first.text, second.text) == ("first", "second")
    assert not first.trusted
    assert table.dispatch("logs_fs.list", {}).source == "logs_fs"


def test_prefixed_renames_examples_and_checks_the_prefix() -> None:
    notes = Prefixed(Notebook(), "work_")
    assert [c[0] for ex in notes.examples for c in ex.calls] == ["work_notes.show",
                                                                  "work_notes.add"]
    for bad in ("", "9x", "a b", "x/"):
        with pytest.raises(UsageError, match="prefix"):
            Prefixed(Notebook(), bad)


def test_needs_approval_asks_before_sensitive_calls(root: Path) -> None:
    asked: list[tuple[str, Mapping[str, Any]]] = []
    answer = False

    def ask(name: str, args: Mapping[str, Any]) -> bool:
        asked.append((name, dict(args)))
        return answer

    fs = NeedsApproval(FileSystem(root), ask=ask)
    assert set(fs.syscalls()) == set(FileSystem(root).syscalls())
    assert run_syscall(fs, "read", {"path": "a.txt"}).text == "alpha"
    assert asked == []  # reads are not gated
    refused = run_syscall(fs, "write", {"path": "b.txt", "text": "x"})
    assert refused.status == "fault"
    assert "the user did not approve 'fs.write'" in refused.text
    assert asked == [("fs.write", {"path": "b.txt", "text": "x"})]
    assert not (root / "b.txt").exists()
    answer = True
    assert run_syscall(fs, "write", {"path": "b.txt", "text": "x"}).status == "ok"
    assert (root / "b.txt").read_text() == "x"


def test_needs_approval_can_gate_everything_and_denies_without_a_callback(root: Path) -> None:
    asked: list[str] = []
    fs = NeedsApproval(FileSystem(root), ask=lambda n, a: asked.append(n) or True,
                       only_sensitive=False)
    assert fs.call("read", ReadArgs(path="a.txt")).text == "alpha"  # type: ignore[union-attr]
    assert asked == ["fs.read"]
    nobody = NeedsApproval(Notebook())
    assert run_syscall(nobody, "show", {"text": ""}).status == "ok"
    assert "did not approve" in run_syscall(nobody, "add", {"text": "x"}).text


def test_needs_approval_works_on_function_peripherals_and_extends_the_time_limit() -> None:
    sent: list[str] = []

    @peripheral(sensitive=True)
    def send(to: str) -> str:
        """Send a message."""
        sent.append(to)
        return "sent"

    gated = NeedsApproval(send(), ask=lambda n, a: a["to"] == "alice", timeout_s=120)
    assert gated.limits.timeout_s == 120
    assert run_syscall(gated, "send", {"to": "mallory"}).status == "fault"
    assert run_syscall(gated, "send", {"to": "alice"}).text == "sent"
    assert sent == ["alice"]


def test_wrappers_compose(root: Path) -> None:
    asked: list[str] = []
    fs = NeedsApproval(Prefixed(FileSystem(root), "docs_"),
                       ask=lambda n, a: asked.append(n) or False)
    assert "did not approve 'docs_fs.write'" in run_syscall(
        fs, "docs_fs.write", {"path": "c.txt", "text": "x"}
    ).text
    assert asked == ["docs_fs.write"]
    ro = ReadOnly(Prefixed(Notebook(), "my_"))
    assert set(ro.syscalls()) == {"my_notes.show"}
    assert repr(ro) == "<ReadOnly <Prefixed <Notebook 'notes'>>>"
    notebook = Notebook()
    wrapped = ReadOnly(NeedsApproval(notebook))
    wrapped.open()
    wrapped.close()
    assert run_syscall(wrapped, "notes.show", {"text": ""}).text == "none"
