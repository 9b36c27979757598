"""Hostile paths: every case of the shared path-traversal corpus against the jailed filesystem.

Each of the corpus's path strings is tried with ``read``, ``list`` and ``write``, and each of its
filesystem-state scenarios is set up and driven. Around the root sit canary files (the root's
parent, a sibling named like the root, an outside folder): no result may contain a canary, and
nothing outside the root may change. A case's expected outcome comes from its
``recommended_handling``: ``reject`` must fault on every operation; ``reject_or_literal`` must
fault or act on the literal name inside the root; ``allow`` must work; ``truncate`` must cap.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llmos.kernel.syscall import Outcome
from llmos.peripherals.filesystem import FileSystem
from llmos.testing import run_syscall
from tests.conftest import data_root

CANARY = "CANARY-must-never-be-read"


def _corpus() -> dict[str, Any]:
    root = data_root()
    if root is None:
        return {"paths": [], "filesystem_scenarios": []}
    data: dict[str, Any] = json.loads(
        (root / "security" / "path_traversal.json").read_text(encoding="utf-8")
    )
    return data


CORPUS = _corpus()
PATHS: list[dict[str, Any]] = CORPUS["paths"]
SCENARIOS = {s["id"]: s for s in CORPUS["filesystem_scenarios"]}

# Files the benign controls name, created inside the root before each case.
INSIDE = {
    "notes.txt": "notes", "docs/report.md": "report", "b.txt": "b", "data/x.csv": "x,y",
    "file..txt": "dots", "..hidden": "hidden", "dir with spaces/file.txt": "spaces",
    "ünïcode/файл.txt": "unicode", "a/d.txt": "d", "a/b/c/keep": "", "sub/keep": "",
    "allowed.txt": "allowed",
}


class Jail:
    """A root with canaries around it, and a snapshot of everything outside the root."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "jail"
        self.outside = base / "outside"
        for rel, text in INSIDE.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (base / "secret.txt").write_text(CANARY)
        (base / "jail-evil").mkdir()
        (base / "jail-evil" / "secret.txt").write_text(CANARY)
        self.outside.mkdir()
        (self.outside / "keep.txt").write_text(CANARY)
        self.fs = FileSystem(self.root)
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, str]:
        """Every path outside the root with its kind and content (links not followed)."""
        seen: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(self.base, followlinks=False):
            rel_dir = os.path.relpath(dirpath, self.base)
            if rel_dir == "jail" or rel_dir.startswith("jail" + os.sep):
                dirnames[:] = []
                continue
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    seen[path] = "link:" + os.readlink(path)
                elif os.path.isfile(path):
                    seen[path] = "file:" + Path(path).read_text()
                else:
                    seen[path] = "dir"
        return seen

    def call(self, op: str, **args: str) -> Outcome:
        outcome = run_syscall(self.fs, op, args)
        assert outcome.status in ("ok", "fault"), f"device error: {outcome.text}"
        assert CANARY not in outcome.text
        assert "root:x:0:0" not in outcome.text  # /etc/passwd
        return outcome

    def assert_contained(self) -> None:
        assert self.snapshot() == self.before, "something outside the root changed"


@pytest.fixture
def jail(tmp_path: Path) -> Jail:
    return Jail(tmp_path)


def _expand(case: dict[str, Any], jail: Jail) -> str:
    gen = case.get("generate")
    path = str(case["path"])
    if gen:
        path = gen["prefix"] + gen["unit"] * gen["count"] + gen["suffix"]
    return (
        path.replace("{ROOT_BASENAME}", jail.root.name)
        .replace("{ROOT_ABSPATH}", str(jail.root).lstrip("/"))
        .replace("{OUTSIDE_DIR}", str(jail.outside))
    )


def _literal_target(jail: Jail, path: str) -> Path | None:
    """The file a literal reading of ``path`` names inside the root, if it can exist there."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/") or not parts or ".." in parts or "\x00" in path:
        return None
    if any(len(p.encode()) > 255 for p in parts):
        return None
    return jail.root.joinpath(*parts)


def drive(case: dict[str, Any], jail: Jail) -> str:
    """Run one path case through read, list and write; return its verdict."""
    path = _expand(case, jail)
    handling = case["recommended_handling"]
    literal = _literal_target(jail, path) if handling == "reject_or_literal" else None
    if literal is not None:  # plant the literal file, so a literal reading is observable
        literal.parent.mkdir(parents=True, exist_ok=True)
        literal.write_text(f"LITERAL:{case['id']}")
    read = jail.call("read", path=path)
    listing = jail.call("list", path=path)
    write = jail.call("write", path=path, text=f"WRITTEN:{case['id']}")
    jail.assert_contained()
    outcomes = (read, listing, write)
    if handling == "reject":
        assert all(o.status == "fault" for o in outcomes), [o.text for o in outcomes]
        return "refused"
    if handling == "reject_or_literal":
        if read.status == "ok":
            assert literal is not None and read.text == f"LITERAL:{case['id']}"
        if write.status == "ok":
            assert literal is not None and literal.read_text() == f"WRITTEN:{case['id']}"
        ok = any(o.status == "ok" for o in outcomes)
        return "literal-ok" if ok else "refused"
    assert handling == "allow", handling
    if path == ".":
        assert listing.status == "ok" and "notes.txt" in listing.text
        return "allowed-ok"
    expected = os.path.normpath(path)
    assert read.status == "ok", read.text
    assert read.text == INSIDE[expected]
    assert read.source == f"fs:{expected}"
    assert write.status == "ok", write.text
    assert (jail.root / expected).read_text() == f"WRITTEN:{case['id']}"
    return "allowed-ok"


@pytest.mark.parametrize("case", PATHS, ids=[c["id"] for c in PATHS])
def test_path_case(case: dict[str, Any], jail: Jail) -> None:
    drive(case, jail)


def test_corpus_summary(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    verdicts: Counter[str] = Counter()
    for i, case in enumerate(PATHS):
        base = tmp_path / f"case{i}"
        base.mkdir()
        verdicts[drive(case, Jail(base))] += 1
    assert len(PATHS) == 79
    assert sum(verdicts.values()) == len(PATHS)
    with capsys.disabled():
        print(
            f"\npath traversal corpus: tried {len(PATHS)}, refused {verdicts['refused']}, "
            f"literal-ok {verdicts['literal-ok']}, allowed-ok {verdicts['allowed-ok']}, "
            "escaped 0"
        )


# -- filesystem-state scenarios -------------------------------------------------------------


def _scenario(case_id: str) -> dict[str, Any]:
    if case_id not in SCENARIOS:
        pytest.skip("path traversal corpus not found: set LLMOS_DATA")
    return SCENARIOS[case_id]


def test_fs01_symlink_to_etc(jail: Jail) -> None:
    case = _scenario("fs-01")
    (jail.root / "link").symlink_to("/etc")
    assert jail.call(case["request"]["op"], path=case["request"]["path"]).status == "fault"
    assert jail.call("list", path="link").status == "fault"
    jail.assert_contained()


def test_fs02_symlink_to_parent(jail: Jail) -> None:
    _scenario("fs-02")
    (jail.root / "up").symlink_to("..")
    assert jail.call("read", path="up/secret.txt").status == "fault"
    assert jail.call("write", path="up/secret.txt", text="x").status == "fault"
    jail.assert_contained()


def test_fs03_symlink_chain(jail: Jail) -> None:
    _scenario("fs-03")
    shutil.rmtree(jail.root / "a")  # the benign controls' folder; the scenario needs the name
    (jail.root / "c").mkdir()
    (jail.root / "b").symlink_to("c/../../")
    (jail.root / "a").symlink_to("b")
    assert jail.call("list", path="a").status == "fault"
    assert jail.call("read", path="a/secret.txt").status == "fault"
    jail.assert_contained()


def test_fs04_dangling_symlink_write(jail: Jail) -> None:
    _scenario("fs-04")
    (jail.root / "out.txt").symlink_to(jail.outside / "victim.txt")
    outcome = jail.call("write", path="out.txt", text="x")
    assert outcome.status == "fault"
    assert "link" in outcome.text
    assert not (jail.outside / "victim.txt").exists()
    jail.assert_contained()


def test_fs05_symlinked_parent_write(jail: Jail) -> None:
    _scenario("fs-05")
    (jail.root / "logs").symlink_to(jail.outside)
    assert jail.call("write", path="logs/new.txt", text="x").status == "fault"
    assert not (jail.outside / "new.txt").exists()
    jail.assert_contained()


def test_fs06_no_delete_and_no_write_through_a_link(jail: Jail) -> None:
    _scenario("fs-06")
    (jail.root / "d").symlink_to(jail.outside)
    assert not any("delete" in name for name in jail.fs.syscalls())  # no delete syscall
    assert jail.call("write", path="d/keep.txt", text="x").status == "fault"
    assert jail.call("read", path="d/keep.txt").status == "fault"
    jail.assert_contained()


def test_fs07_directory_swapped_for_a_link_before_the_call(jail: Jail) -> None:
    _scenario("fs-07")
    (jail.root / "dir").mkdir()
    (jail.root / "dir" / "file.txt").write_text("inside")
    (jail.outside / "file.txt").write_text(CANARY)
    jail.before = jail.snapshot()
    assert jail.call("read", path="dir/file.txt").text == "inside"
    (jail.root / "dir").rename(jail.root / "dir_old")
    (jail.root / "dir").symlink_to(jail.outside)
    assert jail.call("read", path="dir/file.txt").status == "fault"
    jail.assert_contained()


def test_fs07_directory_swapped_during_resolution(
    jail: Jail, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap lands after 'dir' was opened: the held descriptor keeps the read inside."""
    _scenario("fs-07")
    (jail.root / "dir").mkdir()
    (jail.root / "dir" / "file.txt").write_text("inside")
    (jail.outside / "file.txt").write_text(CANARY)
    jail.before = jail.snapshot()
    real_open = os.open
    swapped: list[bool] = []

    def open_then_swap(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if path == "dir" and not swapped:
            swapped.append(True)
            (jail.root / "dir").rename(jail.root / "dir_old")
            (jail.root / "dir").symlink_to(jail.outside)
        return fd

    monkeypatch.setattr(os, "open", open_then_swap)
    outcome = jail.call("read", path="dir/file.txt")
    monkeypatch.undo()
    assert swapped
    assert outcome.status == "fault" or outcome.text == "inside"
    jail.assert_contained()


def test_fs07_racing_swaps_never_escape(jail: Jail) -> None:
    _scenario("fs-07")
    (jail.root / "dir").mkdir()
    (jail.root / "dir" / "file.txt").write_text("inside")
    (jail.outside / "file.txt").write_text(CANARY)
    jail.before = jail.snapshot()
    stop = threading.Event()

    def swapper() -> None:
        real, parked, link = jail.root / "dir", jail.root / "parked", jail.root / "link"
        link.symlink_to(jail.outside)
        while not stop.is_set():
            real.rename(parked)
            link.rename(real)  # 'dir' is now a link to the outside
            real.rename(link)
            parked.rename(real)

    racer = threading.Thread(target=swapper)
    racer.start()
    try:
        results = Counter(
            jail.call("read", path="dir/file.txt").text == "inside" for _ in range(300)
        )
    finally:
        stop.set()
        racer.join()
    assert sum(results.values()) == 300  # every read was inside or refused (call() checks)
    jail.assert_contained()


def test_fs08_symlink_loop(jail: Jail) -> None:
    _scenario("fs-08")
    (jail.root / "loop").symlink_to("loop")
    for op in ("read", "list"):
        assert jail.call(op, path="loop").status == "fault"
    assert jail.call("write", path="loop", text="x").status == "fault"
    jail.assert_contained()


def test_fs09_hard_link_is_refused_on_read(jail: Jail) -> None:
    _scenario("fs-09")
    os.link(jail.outside / "keep.txt", jail.root / "hl.txt")
    jail.before = jail.snapshot()
    outcome = jail.call("read", path="hl.txt")
    assert outcome.status == "fault"
    assert "hard links" in outcome.text
    # a write replaces the link by rename and leaves the outside file alone
    assert jail.call("write", path="hl.txt", text="new").status == "ok"
    assert (jail.root / "hl.txt").read_text() == "new"
    jail.assert_contained()


def test_fs10_no_archive_extraction(jail: Jail) -> None:
    _scenario("fs-10")
    assert set(jail.fs.syscalls()) == {"fs.read", "fs.write", "fs.list", "fs.search"}


def test_fs11_fifo_is_refused(jail: Jail) -> None:
    _scenario("fs-11")
    os.mkfifo(jail.root / "pipe")
    assert jail.call("read", path="pipe").status == "fault"
    assert jail.call("list", path="pipe").status == "fault"
    jail.assert_contained()


def test_fs12_huge_sparse_file_is_cut(jail: Jail) -> None:
    _scenario("fs-12")
    try:
        with open(jail.root / "big.bin", "wb") as f:
            f.truncate(100 * 2**30)
    except OSError:
        pytest.skip("this filesystem cannot hold a sparse 100 GiB file")
    outcome = jail.call("read", path="big.bin")
    assert outcome.status == "ok"
    assert f"only the first {jail.fs.max_read_bytes} were read" in outcome.text
    assert len(outcome.text) < jail.fs.max_read_bytes + 200
    (jail.root / "big.bin").unlink()


def test_fs13_case_variants_name_other_files(jail: Jail) -> None:
    _scenario("fs-13")
    (jail.root / ".env").write_text("SECRET=1")
    if (jail.root / ".ENV").exists():
        pytest.skip("case-insensitive filesystem: '.ENV' is '.env' (inside the root)")
    assert jail.call("read", path=".ENV").status == "fault"


def test_every_scenario_has_a_test() -> None:
    if not SCENARIOS:
        pytest.skip("path traversal corpus not found: set LLMOS_DATA")
    names = {name for name in globals() if name.startswith("test_fs")}
    covered = {f"fs-{name[7:9]}" for name in names}
    assert covered == set(SCENARIOS)

