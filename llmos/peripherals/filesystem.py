"""The filesystem device: read, write, list and search files inside one jailed root.

Concept: the root is opened once, when the device is mounted (``open``, or its first call if
nothing mounted it), and held until ``close``: renaming the root away or putting a link or
another folder at its path afterwards does not move the jail. Every path the model writes is
resolved *component by component* from that descriptor, never as a string handed to
``open()``. Each directory step is ``os.open(name, O_DIRECTORY | O_NOFOLLOW, dir_fd=parent)``;
the final file is opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` (regular
files only). A symlink anywhere in the path makes the open fail, so there is nothing to race:
a directory swapped for a link after a check is simply refused (or the old directory, already
held by its descriptor, is used).

Rules for a path (each refused with a :class:`~llmos.errors.Fault` saying what to write):
- relative, ``/``-separated; ``.`` is skipped and ``..`` removes the name before it, before
  anything is opened, and never above the root (``a/../b.txt`` is ``b.txt``, ``../x`` is
  refused);
- no empty path, no absolute path, no NUL or control or invisible (format) characters;
- names must be portable, so the same jail holds on every system: no ``\\`` or ``:``, no
  trailing dot or space, no reserved device names (``CON``, ``NUL``, ``COM1``, ...);
- at most ``_MAX_PATH`` characters, ``_MAX_DEPTH`` components, 255 bytes per name;
- the string is taken literally: no ``~`` or ``$VAR`` expansion, no URL/HTML/Unicode decoding;
- read refuses a file with several hard links (it may alias a file outside the root) and caps
  the bytes read; write is refused in read-only mode, capped, and atomic (a temp file in the
  same directory descriptor, then ``rename`` with ``src_dir_fd``/``dst_dir_fd``). A refused or
  failed write leaves nothing behind: every check that can refuse runs before anything is
  created, and the temp file and the folders it created are removed if it fails later.

Read returns a :class:`~llmos.peripherals.base.Document` with source ``fs:<relative path>``:
file contents enter RAM as untrusted, with the path as provenance. Names read from the disk
(list, search) that hold a newline, control or invisible character are shown quoted on one
line, so a file name cannot start a line of its own.

Limitation: a root on a filesystem another user can write into is not a jail (hard links made
by others into the root are refused on read but cannot be prevented). There is no delete,
rename or archive extraction syscall.

Neighbours: ``llmos.peripherals.base`` (contract); ``llmos.peripherals.wrappers`` (``ReadOnly``,
``NeedsApproval``); the kernel grounds the ``path`` fields in trusted pages (``kernel.ground``).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fnmatch
import os
import secrets
import stat
import threading
import unicodedata
import weakref
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field

from llmos.errors import Fault, UsageError
from llmos.peripherals.base import (
    Document,
    Example,
    Limits,
    Peripheral,
    free_text,
    grounded,
    quote,
    syscall,
)

__all__ = ["FileSystem", "ListArgs", "ReadArgs", "SearchArgs", "WriteArgs"]

_MAX_PATH = 1024  # characters in one path
_MAX_DEPTH = 32  # components in one path
_MAX_NAME = 255  # bytes in one name (NAME_MAX)
_MAX_LIST = 200  # entries shown by list
_MAX_VISIT = 10_000  # entries walked by one search
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # no FIFO hang
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class ReadArgs(BaseModel):
    """Arguments of ``fs.read``."""

    path: str = grounded("path", description="File path relative to the root, e.g. 'notes.txt'")


class WriteArgs(BaseModel):
    """Arguments of ``fs.write``."""

    path: str = grounded("path", description="File path relative to the root, e.g. 'out.txt'")
    text: str = free_text(description="The whole new content of the file.")


class ListArgs(BaseModel):
    """Arguments of ``fs.list``."""

    path: str = grounded("path", ".", description="Directory relative to the root; '.' is the root")


class SearchArgs(BaseModel):
    """Arguments of ``fs.search``."""

    pattern: str = Field(
        min_length=1, max_length=200,
        description="A glob like '*.md' or 'docs/*.txt', or a part of a file name",
    )


class FileSystem(Peripheral):
    """Files under one folder: read, write, list and search them by relative path."""

    name = "fs"
    limits = Limits(timeout_s=10.0, max_output_chars=16_400)
    # generic worked examples: list a folder, read a file and answer from it, write a file
    examples: tuple[Example, ...] = (
        Example(
            question="Which files are in my folder?",
            calls=(("fs.list", {"path": "."}, "notes.txt\nphotos/"),),
            answer="notes.txt and a folder named photos.",
        ),
        Example(
            question="Save the line 'call the plumber' in chores.txt",
            calls=((
                "fs.write", {"path": "chores.txt", "text": "call the plumber"},
                "wrote 16 bytes to chores.txt",
            ),),
            answer="Saved 'call the plumber' in chores.txt.",
        ),
        Example(
            question="When is the dentist appointment in notes.txt?",
            calls=((
                "fs.read", {"path": "notes.txt"},
                "Dentist: Friday at 10.\nBuy stamps.",
            ),),
            answer="Friday at 10.",
        ),
    )

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        read_only: bool = False,
        max_read_bytes: int = 16_000,
        max_write_bytes: int = 1_000_000,
        max_results: int = 100,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UsageError(f"the filesystem root {str(root)!r} is not a directory; create it "
                             "first", code="fs-root")
        self.read_only = read_only
        self.max_read_bytes = max_read_bytes
        self.max_write_bytes = max_write_bytes
        self.max_results = max_results
        self._root_fd: int | None = None
        self._release: weakref.finalize[[int], FileSystem] | None = None
        self._mounting = threading.RLock()  # a close never interleaves with taking the root

    def open(self) -> None:
        """Mount: open the root once; every call walks from this descriptor until ``close``."""
        with self._mounting:
            if self._root_fd is not None:
                return
            try:
                fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                raise UsageError(f"the filesystem root {str(self.root)!r} cannot be opened "
                                 f"({os.strerror(exc.errno or 0)})", code="fs-root") from exc
            self._root_fd = fd
            self._release = weakref.finalize(self, os.close, fd)  # if never closed

    def close(self) -> None:
        """Unmount: release the root's descriptor (a later call mounts it again)."""
        with self._mounting:
            if self._release is not None:
                self._release()
            self._root_fd = self._release = None

    def _root_copy(self) -> int:
        """A new descriptor of the mounted root for one walk (mounting now if nothing did)."""
        with self._mounting:
            if self._root_fd is None:
                try:
                    self.open()
                except UsageError:
                    raise Fault("the folder this device serves cannot be opened any more; "
                                "tell the user") from None
            assert self._root_fd is not None
            return os.open(".", _DIR_FLAGS, dir_fd=self._root_fd)

    # -- syscalls ---------------------------------------------------------------------------

    @syscall
    def read(self, args: ReadArgs) -> Document:
        """Read a text file; long files are cut."""
        parts = self._file_parts(args.path)
        with self._walk(parts[:-1]) as (dir_fd, rel):
            fd = self._open_leaf(dir_fd, parts[-1], args.path)
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
                    raise Fault(f"{args.path!r} is {what}; only regular files can be read")
                if info.st_nlink > 1:
                    raise Fault(f"{args.path!r} has several hard links and may be a file "
                                "outside the folder; it cannot be read")
                data = _read_up_to(fd, self.max_read_bytes + 1)
            finally:
                os.close(fd)
        relpath = "/".join([*rel, parts[-1]])
        text = data[: self.max_read_bytes].decode("utf-8", errors="replace")
        if len(data) > self.max_read_bytes:
            text += (f"\n[cut: {relpath} is {info.st_size} bytes; only the first "
                     f"{self.max_read_bytes} were read]")
        return Document(text=text, source=f"fs:{relpath}")

    @syscall(sensitive=True)
    def write(self, args: WriteArgs) -> str:
        """Write a text file (replacing it), creating missing folders."""
        if self.read_only:
            raise Fault("this folder is mounted read-only: files cannot be written")
        data = args.text.encode("utf-8")
        if len(data) > self.max_write_bytes:
            raise Fault(f"the text is {len(data)} bytes; the limit is {self.max_write_bytes}")
        parts = self._file_parts(args.path)
        with self._walk(parts[:-1], create=True) as (dir_fd, rel):
            leaf = parts[-1]
            try:
                old = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                old = None
            if old is not None and not stat.S_ISREG(old.st_mode):
                raise Fault(f"{args.path!r} exists and is not a regular file "
                            "(a folder, link or device); choose another name")
            temp = f".llmos-{secrets.token_hex(8)}.tmp"
            fd = os.open(temp, _TEMP_FLAGS, 0o644, dir_fd=dir_fd)
            try:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                # rename replaces a link planted since the check, never follows it
                os.rename(temp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dir_fd)
                raise
        return f"wrote {len(data)} bytes to {'/'.join([*rel, leaf])}"

    @syscall
    def list(self, args: ListArgs) -> str:
        """List a folder: one name per line, folders end with '/'."""
        parts = _split(args.path)
        with self._walk(parts) as (dir_fd, rel):
            entries = sorted(_entries(dir_fd))
        where = "/".join(rel) or "."
        if not entries:
            return f"{where} is empty"
        shown = [_display(name) + suffix for name, suffix in entries[:_MAX_LIST]]
        if len(entries) > _MAX_LIST:
            shown.append(f"[... and {len(entries) - _MAX_LIST} more]")
        return "\n".join(shown)

    @syscall
    def search(self, args: SearchArgs) -> str:
        """Find files by glob ('*.md', 'docs/*.txt') or by a part of their name."""
        pattern = args.pattern
        is_glob = any(c in pattern for c in "*?[")
        needle = pattern.casefold()
        found: list[str] = []
        visited = 0
        with self._walk([]) as (root_fd, _):
            for relpath, is_dir in _tree(root_fd, []):
                visited += 1
                if visited > _MAX_VISIT or len(found) >= self.max_results:
                    found.append(f"[stopped after {visited - 1} entries: narrow the pattern]")
                    break
                name = relpath.rsplit("/", 1)[-1]
                hit = (fnmatch.fnmatchcase(relpath, pattern) or fnmatch.fnmatchcase(name, pattern)
                       if is_glob else needle in name.casefold())
                if hit:
                    found.append(_display(relpath) + ("/" if is_dir else ""))
        return "\n".join(found) if found else f"no file name matches {pattern!r}"

    # -- resolution -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _walk(
        self, parts: builtins.list[str], *, create: bool = False
    ) -> Iterator[tuple[int, builtins.list[str]]]:
        """Open the folder ``parts`` names (normalised by :func:`_split`), one step at a time.

        Yields the folder's descriptor and its relative path. With ``create``, missing folders
        are made; if the block then fails, the folders made here are removed again.
        """
        shown = "/".join(parts) or "."
        stack = [self._root_copy()]
        made: builtins.list[int] = []  # depths whose next folder this walk created
        try:
            for part in parts:
                depth = len(stack) - 1
                try:
                    fd = os.open(part, _DIR_FLAGS, dir_fd=stack[-1])
                except FileNotFoundError:
                    if not create:
                        raise Fault(_missing(shown, parts[: depth + 1])) from None
                    os.mkdir(part, 0o755, dir_fd=stack[-1])
                    made.append(depth)
                    fd = os.open(part, _DIR_FLAGS, dir_fd=stack[-1])
                except OSError as exc:
                    raise _refusal(shown, parts[: depth + 1], exc) from None
                stack.append(fd)
            yield stack[-1], parts
        except BaseException as exc:
            for depth in reversed(made):  # innermost first; rmdir leaves a non-empty folder
                with contextlib.suppress(OSError):
                    os.rmdir(parts[depth], dir_fd=stack[depth])
            if isinstance(exc, OSError):
                raise _refusal(shown, parts[: len(stack) - 1], exc) from None
            raise
        finally:
            for fd in stack:
                os.close(fd)

    def _file_parts(self, path: str) -> builtins.list[str]:
        """The components of a file path; a path naming the root ('.', 'a/..') is refused."""
        parts = _split(path)
        if not parts:
            raise Fault(f"{path!r} is a folder; use fs.list to see what it holds")
        return parts

    def _open_leaf(self, dir_fd: int, leaf: str, shown: str) -> int:
        try:
            return os.open(leaf, _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            raise Fault(f"{shown!r} does not exist; use fs.list or fs.search to find files") \
                from None
        except OSError as exc:
            raise _refusal(shown, [leaf], exc) from None


def _split(path: str) -> list[str]:
    """The components of ``path`` ('.', empty parts and '..' resolved), or a Fault saying why.

    ``..`` removes the name before it here, as text: nothing is opened (or created) for a
    path that ends up above the root, and a link named before ``..`` is never entered.
    """
    if not path:
        raise Fault("the path is empty; use '.' for the folder itself or a relative file path")
    if len(path) > _MAX_PATH:
        raise Fault(f"the path has {len(path)} characters; the limit is {_MAX_PATH}")
    if path.startswith("/"):
        raise Fault(f"{path[:80]!r} is absolute; use a path relative to the folder, e.g. "
                    "'notes.txt'")
    for ch in path:
        if ch in "\\:" or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            what = repr(ch) if ch in "\\:" else f"U+{ord(ch):04X}"
            raise Fault(f"the path contains {what}, which is not allowed in file names; "
                        "use '/' between folders and plain names")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if len(parts) > _MAX_DEPTH:
        raise Fault(f"the path has {len(parts)} parts; the limit is {_MAX_DEPTH}")
    normal: list[str] = []
    for part in parts:
        if part == "..":
            if not normal:
                raise Fault(f"{path[:80]!r} goes above the folder; use a path inside it")
            normal.pop()
            continue
        if len(part.encode("utf-8", errors="surrogatepass")) > _MAX_NAME:
            raise Fault(f"a name in the path is longer than {_MAX_NAME} bytes")
        if part[-1] in ". ":
            raise Fault(f"the name {part!r} ends with a dot or a space; use a plain name")
        if part.split(".")[0].strip().casefold() in _RESERVED:
            raise Fault(f"{part!r} is a reserved device name on some systems; use another name")
        normal.append(part)
    return normal


def _missing(shown: str, names: list[str]) -> str:
    where = "/".join(names)
    return f"{shown!r}: the folder {where!r} does not exist; use fs.list to see what exists"


def _refusal(shown: str, names: list[str], exc: OSError) -> Fault:
    """Map an OS error met while resolving ``shown`` to a fault the model can act on."""
    where = "/".join(names) or "."
    if exc.errno == errno.ELOOP:
        return Fault(f"{shown!r}: {where!r} is a symbolic link; links are not followed")
    if exc.errno == errno.ENOTDIR:
        return Fault(f"{shown!r}: {where!r} is not a folder (or is a link, which is not "
                     "followed)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return Fault(f"{shown!r}: permission denied")
    if exc.errno == errno.ENAMETOOLONG:
        return Fault(f"{shown!r}: the path is too long")
    if exc.errno == errno.EISDIR:
        return Fault(f"{shown!r} is a folder; use fs.list")
    return Fault(f"{shown!r} cannot be opened ({os.strerror(exc.errno or 0)})")


def _display(name: str) -> str:
    """A name from the disk for a listing: as it is, or quoted on one line if not printable."""
    return name if name.isprintable() else quote(name, 255)


def _read_up_to(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 65_536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _entries(dir_fd: int) -> Iterator[tuple[str, str]]:
    """(name, suffix) for each entry: '/' for folders, ' (link, not followed)' for links."""
    with os.scandir(dir_fd) as it:
        for entry in it:
            if entry.is_symlink():
                yield entry.name, " (link, not followed)"
            else:
                yield entry.name, "/" if entry.is_dir(follow_symlinks=False) else ""


def _tree(dir_fd: int, prefix: list[str]) -> Iterator[tuple[str, bool]]:
    """Every entry beneath ``dir_fd`` as (relative path, is folder); links are not entered."""
    if len(prefix) >= _MAX_DEPTH:
        return
    for name, suffix in sorted(_entries(dir_fd)):
        yield "/".join([*prefix, name]), suffix == "/"
        if suffix != "/":
            continue
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            continue  # swapped for a link or removed meanwhile: skip it
        try:
            yield from _tree(child, [*prefix, name])
        finally:
            os.close(child)
