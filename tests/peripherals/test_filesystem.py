"""The filesystem device: reads, writes, listings and searches inside its root, with caps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmos.errors import Fault, UsageError
from llmos.peripherals.base import GROUNDED_KEY, Document
from llmos.peripherals.filesystem import FileSystem, ReadArgs, WriteArgs
from llmos.testing import run_syscall


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "notes.txt").write_text("buy milk\n")
    (root / "docs" / "report.md").write_text("# Report\nall good\n")
    (root / "docs" / "old.txt").write_text("old\n")
    return root


def test_read_returns_an_untrusted_document_with_its_path(root: Path) -> None:
    doc = FileSystem(root).read(ReadArgs(path="docs/../docs/./report.md"))
    assert doc == Document(text="# Report\nall good\n", source="fs:docs/report.md")
    outcome = run_syscall(FileSystem(root), "read", {"path": "notes.txt"})
    assert outcome.status == "ok"
    assert outcome.text == "buy milk\n"
    assert not outcome.trusted
    assert outcome.source == "fs:notes.txt"


def test_read_caps_the_bytes_and_says_so(root: Path) -> None:
    (root / "big.txt").write_text("x" * 5000)
    text = FileSystem(root, max_read_bytes=100).read(ReadArgs(path="big.txt")).text
    assert text.startswith("x" * 100)
    assert "x" * 101 not in text
    assert "[cut: big.txt is 5000 bytes; only the first 100 were read]" in text


def test_read_decodes_bad_utf8_without_failing(root: Path) -> None:
    (root / "bin.dat").write_bytes(b"ok \xff\xfe end")
    assert FileSystem(root).read(ReadArgs(path="bin.dat")).text == "ok \ufffd\ufffd end"


def test_read_faults_clearly(root: Path) -> None:
    fs = FileSystem(root)
    for path, hint in [
        ("missing.txt", "does not exist; use fs.list"),
        ("nope/missing.txt", "the folder 'nope' does not exist"),
        ("docs", "is a directory"),
        (".", "is a folder"),
        ("docs/..", "is a folder"),
        ("notes.txt/x", "is not a folder"),
    ]:
        with pytest.raises(Fault, match=hint.replace(".", r"\.").replace("(", r"\(")):
            fs.read(ReadArgs(path=path))


def test_write_creates_replaces_and_leaves_no_temp_files(root: Path) -> None:
    fs = FileSystem(root)
    assert fs.write(WriteArgs(path="out/new/file.txt", text="héllo")) == (
        "wrote 6 bytes to out/new/file.txt"
    )
    assert (root / "out" / "new" / "file.txt").read_text() == "héllo"
    fs.write(WriteArgs(path="notes.txt", text="replaced"))
    assert (root / "notes.txt").read_text() == "replaced"
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".llmos-")]
    assert leftovers == []


def test_write_caps_and_refuses_non_files(root: Path) -> None:
    fs = FileSystem(root, max_write_bytes=10)
    with pytest.raises(Fault, match="the limit is 10"):
        fs.write(WriteArgs(path="a.txt", text="x" * 11))
    assert not (root / "a.txt").exists()
    with pytest.raises(Fault, match="not a regular file"):
        fs.write(WriteArgs(path="docs", text="x"))
    with pytest.raises(Fault, match="is a folder"):
        fs.write(WriteArgs(path="docs/..", text="x"))


def test_read_only_mode_refuses_writes(root: Path) -> None:
    fs = FileSystem(root, read_only=True)
    outcome = run_syscall(fs, "write", {"path": "notes.txt", "text": "x"})
    assert outcome.status == "fault"
    assert "read-only" in outcome.text
    assert (root / "notes.txt").read_text() == "buy milk\n"
    assert run_syscall(fs, "read", {"path": "notes.txt"}).status == "ok"


def test_list_marks_folders_and_links(root: Path) -> None:
    (root / "link").symlink_to(root / "notes.txt")
    fs = FileSystem(root)
    assert run_syscall(fs, "list", {}).text == (
        "docs/\nlink (link, not followed)\nnotes.txt"
    )
    assert run_syscall(fs, "list", {"path": "docs"}).text == "old.txt\nreport.md"
    (root / "empty").mkdir()
    assert run_syscall(fs, "list", {"path": "empty/"}).text == "empty is empty"
    many = root / "many"
    many.mkdir()
    for i in range(250):
        (many / f"f{i:03}").touch()
    listing = run_syscall(fs, "list", {"path": "many"}).text.splitlines()
    assert len(listing) == 201
    assert listing[-1] == "[... and 50 more]"


def test_search_by_glob_and_substring_is_bounded(root: Path) -> None:
    fs = FileSystem(root, max_results=3)
    assert run_syscall(fs, "search", {"pattern": "*.md"}).text == "docs/report.md"
    assert run_syscall(fs, "search", {"pattern": "docs/*.txt"}).text == "docs/old.txt"
    assert run_syscall(fs, "search", {"pattern": "REPORT"}).text == "docs/report.md"
    assert "no file name matches" in run_syscall(fs, "search", {"pattern": "zzz"}).text
    for i in range(10):
        (root / f"log{i}.txt").touch()
    hits = run_syscall(fs, "search", {"pattern": "log"}).text.splitlines()
    assert len(hits) == 4
    assert hits[-1].startswith("[stopped after")


def test_search_does_not_enter_links(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("CANARY")
    (root / "away").symlink_to(outside)
    text = run_syscall(FileSystem(root), "search", {"pattern": "*.md"}).text
    assert "secret" not in text


def test_fifo_is_refused_without_blocking(root: Path) -> None:
    os.mkfifo(root / "pipe")
    fs = FileSystem(root)
    for op, args in [("read", {"path": "pipe"}), ("write", {"path": "pipe", "text": "x"})]:
        outcome = run_syscall(fs, op, args)
        assert outcome.status == "fault"
        assert "not a regular file" in outcome.text


def test_schema_grounds_every_path_and_marks_write_sensitive(root: Path) -> None:
    specs = FileSystem(root).syscalls()
    assert set(specs) == {"fs.read", "fs.write", "fs.list", "fs.search"}
    for name in ("fs.read", "fs.write", "fs.list"):
        schema = specs[name].args.model_json_schema()
        assert schema["properties"]["path"][GROUNDED_KEY] == "path"
    assert specs["fs.write"].sensitive
    assert not any(specs[n].sensitive for n in ("fs.read", "fs.list", "fs.search"))
    assert specs["fs.read"].returns_document


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        FileSystem(tmp_path / "missing")
