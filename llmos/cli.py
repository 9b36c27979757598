"""The shell: the ``llmos`` command.

``llmos run "QUESTION"`` boots a kernel and streams what happens (``--mcp "CMD"`` mounts an MCP
server beside the devices; ``--model NAME|PATH`` picks the model); ``llmos models`` lists the
packaged models; ``llmos peripherals`` lists the installed devices (and an MCP server's tools);
``llmos serve-mcp`` serves llmos's walled devices to MCP clients; ``llmos disk ...`` inspects
the disk. Errors are one clear line and a
non-zero exit, never a traceback, unless ``--debug``.

The disk lives at ``--disk PATH`` (or ``--disk chroma://HOST:PORT`` for a Chroma server), else
``$LLMOS_DISK``, else ``$XDG_DATA_HOME/llmos/disk`` (``~/.local/share/llmos/disk``). ``llmos run``
uses a disk only when given ``--disk`` or ``--history``. ``--cpu URL`` decodes on an
OpenAI-compatible model server instead of the in-process model.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from llmos.errors import LLMOSError, RunError, UsageError
from llmos.peripherals.base import Peripheral, discover, discovery_errors
from llmos.trace import Answered, Called, Decoded, Event, Faulted, Paged, Scheduled, Voted

__all__ = ["main"]

_err = Console(stderr=True, highlight=False)
_MCP_HELP = (
    'an MCP server to mount: a command line run over stdio ("python server.py --flag") or an '
    "http(s) URL (streamable HTTP); its tools become syscalls mcp.<tool> (then mcp2, ...; "
    "repeatable)"
)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmos", description="A local LLM as an OS for agents.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="answer a question with an agent process")
    run.add_argument("question", help="what to ask")
    run.add_argument("--json", action="store_true", help="print one JSON object {answer, trace}")
    run.add_argument(
        "--model", help="a packaged model's name (see `llmos models`) or the path of a GGUF file"
    )
    run.add_argument(
        "--threads", type=int, default=None,
        help="CPU threads for the model (default: the idle cores, at least one)",
    )
    run.add_argument(
        "--cpu", metavar="URL",
        help="an OpenAI-compatible model server to decode on, e.g. http://127.0.0.1:8080/v1",
    )
    run.add_argument("--n-ctx", type=int, default=None,
                     help="the --cpu server's context window, where it does not say itself")
    run.add_argument(
        "--allow-unconstrained", action="store_true",
        help="accept a --cpu server that cannot constrain decoding (replies are still checked)",
    )
    run.add_argument(
        "--peripherals",
        help="comma-separated device names to mount (see `llmos peripherals`); default: the "
        "calculator and the browser (which opens a loopback host:port only if the question "
        "names it)",
    )
    run.add_argument(
        "--verbose", "-v", action="store_true", help="show decode and scheduling events"
    )
    run.add_argument("--max-steps", type=int, default=None, help="instructions before giving up")
    run.add_argument(
        "--history", type=Path,
        help='a JSONL file of earlier turns, one {"role": "user"|"model"|"device", "text": ...} '
        "a line, fed to the process before the question (the pager applies)",
    )
    run.add_argument("--disk", help="the disk folder, or chroma://HOST:PORT (see `llmos disk`)")
    run.add_argument("--ram", type=int, default=None, help="the process's RAM budget in tokens")
    run.add_argument("--mcp", action="append", default=[], metavar="CMD", help=_MCP_HELP)

    sub.add_parser("models", help="list the packaged models and whether they are installed")
    listing = sub.add_parser("peripherals", help="list installed devices and their syscalls")
    listing.add_argument("--mcp", action="append", default=[], metavar="CMD", help=_MCP_HELP)

    serve = sub.add_parser(
        "serve-mcp", help="serve llmos's devices (walls included) to MCP clients over stdio"
    )
    serve.add_argument(
        "--peripherals", default="python,fs,browser",
        help="comma-separated devices to serve: python, fs, browser (default: all three)",
    )
    serve.add_argument("--root", type=Path, help="the folder the fs device is jailed to")
    serve.add_argument("--read-only", action="store_true", help="serve fs without writes")

    disk = sub.add_parser("disk", help="inspect the disk (the page store)")
    disk.add_argument("--disk", help="the disk folder, or chroma://HOST:PORT")
    dsub = disk.add_subparsers(dest="disk_command", required=True)
    ls = dsub.add_parser("ls", help="list pages")
    ls.add_argument("--pid", type=int, default=None)
    ls.add_argument("--limit", type=int, default=50)
    search = dsub.add_parser("search", help="search pages")
    search.add_argument("query")
    search.add_argument("--pid", type=int, default=None)
    search.add_argument("-k", type=int, default=5)
    dsub.add_parser("audit", help="count pages by source and trust")
    rm = dsub.add_parser("rm", help="delete a process's pages")
    rm.add_argument("--pid", type=int, required=True)
    return parser


def _disk_path(given: str | None) -> Path:
    if given is not None:
        return Path(given)
    if os.environ.get("LLMOS_DISK"):
        return Path(os.environ["LLMOS_DISK"])
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "llmos" / "disk"


def _open_disk(given: str | None) -> Any:
    from llmos.memory.chroma import ChromaDisk

    where = given if given is not None else os.environ.get("LLMOS_DISK")
    if where and where.split("://", 1)[0] in ("chroma", "http", "https"):
        return ChromaDisk.connect(where)
    return ChromaDisk(_disk_path(given))


def _read_history(path: Path) -> list[tuple[str, str, str | None]]:
    """Parse a history file completely before anything is fed (a bad line loses nothing)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the history file {str(path)!r}: {exc}") from exc
    turns: list[tuple[str, str, str | None]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            role = item.get("role", "user")
            text = item["text"]
            source = item.get("source")
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as exc:
            raise UsageError(
                f"{path}:{n}: expected a JSON object with a \"text\" field "
                f"(and optionally \"role\", \"source\"): {exc}"
            ) from exc
        if role not in ("user", "model", "device") or not isinstance(text, str):
            raise UsageError(f"{path}:{n}: role must be user, model or device, text a string")
        turns.append((role, text, source if isinstance(source, str) else None))
    return turns


def _mount(names: str | None) -> list[Peripheral] | None:
    if names is None:
        return None
    available = discover()
    devices: list[Peripheral] = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        cls = available.get(name)
        if cls is None:
            known = ", ".join(sorted(available)) or "none"
            raise UsageError(f"no installed peripheral named {name!r}; installed: {known}")
        try:
            devices.append(cls())
        except TypeError as exc:
            raise UsageError(
                f"peripheral {name!r} needs configuration and cannot be mounted from the shell "
                f"({exc}); mount it from Python instead"
            ) from exc
    return devices


def _mount_mcp(commands: Sequence[str]) -> list[Peripheral]:
    from llmos.peripherals.mcp import MCP

    devices: list[Peripheral] = []
    for i, cmd in enumerate(commands):
        name = "mcp" if i == 0 else f"mcp{i + 1}"
        http = cmd.startswith(("http://", "https://"))  # streamable HTTP, else a command line
        devices.append(MCP(url=cmd, name=name) if http else MCP(cmd, name=name))
    return devices


_URL = re.compile(r"https?://", re.IGNORECASE)
_LOOPBACK = re.compile(r"https?://((?:localhost|127(?:\.\d{1,3}){3}):\d{1,5})(?!\d)")


def _shell_devices(question: str) -> list[Peripheral]:
    """What ``llmos run`` mounts when no ``--peripherals`` are named: the calculator, and the
    browser when the question names a URL (with both mounted, the 270M and the 0.5B models
    answered "What is 123456789 * 987654321?" without calling). The browser opens a loopback
    ``host:port`` only when the question itself names it (the person at the shell asked for
    that page); every other private address stays shut."""
    from llmos.peripherals.browser import Browser
    from llmos.peripherals.calculator import Calculator

    if not _URL.search(question):  # a second device only makes the choice harder for the model
        return [Calculator()]
    return [Calculator(), Browser(allow_hosts=sorted(set(_LOOPBACK.findall(question))))]


def _show(event: Event, *, verbose: bool) -> None:
    if isinstance(event, Called):
        args = json.dumps(event.args, ensure_ascii=False)
        _err.print(f"[cyan]→ {escape(event.syscall)}[/] {escape(args)}")
        style = {"ok": "green", "fault": "yellow", "error": "red", "denied": "red"}[event.status]
        label = "" if event.trusted else f" (untrusted, from {event.source})"
        result = event.result if len(event.result) < 400 else event.result[:400] + "…"
        _err.print(f"[{style}]← {escape(result)}[/]{escape(label)}")
    elif isinstance(event, Faulted):
        _err.print(f"[yellow]! {escape(event.message)}[/]")
    elif isinstance(event, Answered):
        pass  # printed by the caller
    elif verbose and isinstance(event, Decoded):
        _err.print(
            f"[dim]decoded step {event.step}: {event.decoded_tokens} sampled + "
            f"{event.forced_tokens} forced tokens; prompt {event.prompt_tokens} "
            f"({event.reused_tokens} reused, {event.prefilled_tokens} prefilled); "
            f"{event.seconds:.2f} s[/]"
        )
    elif verbose and isinstance(event, Paged | Scheduled | Voted):
        _err.print(f"[dim]{escape(event.model_dump_json())}[/]")


def _cpu_factory(model: str | None, threads: int | None) -> Callable[[], Any]:
    """What loads the CPU: a packaged model by name, a GGUF by path, else the default."""
    from llmos.cpu.llama import LlamaCPU
    from llmos.cpu.models import MODELS

    if model is None:
        return lambda: LlamaCPU.default(n_threads=threads)
    if model in MODELS:
        return lambda: LlamaCPU.named(model, n_threads=threads)
    path = Path(model)
    if not path.is_file():
        known = ", ".join(sorted(MODELS))
        raise UsageError(
            f"--model {model!r} is neither a packaged model ({known}) nor a GGUF file",
            code="model-name",
        )
    return lambda: LlamaCPU(path, n_threads=threads)


def _cmd_run(ns: argparse.Namespace) -> int:
    from llmos.kernel.boot import Kernel
    from llmos.params import Params

    devices = _mount(ns.peripherals) if ns.peripherals is not None else _shell_devices(ns.question)
    if ns.mcp:  # beside the named devices, or beside the shell's default ones
        devices = [*(devices or []), *_mount_mcp(ns.mcp)]
    quiet = ns.json
    if ns.cpu is not None and ns.model is not None:
        raise UsageError("give --cpu (a model server) or --model (a model), not both")
    if ns.cpu is not None:
        from llmos.cpu.http import HTTPCPU

        cpu_factory: Callable[[], Any] = lambda: HTTPCPU(  # noqa: E731
            ns.cpu, n_ctx=ns.n_ctx, allow_unconstrained=ns.allow_unconstrained)
    else:
        cpu_factory = _cpu_factory(ns.model, ns.threads)
    if quiet:
        cpu = cpu_factory()
    else:
        with _err.status("booting the CPU (loading the model)…"):
            cpu = cpu_factory()
    params = Params() if ns.max_steps is None else Params(max_steps=ns.max_steps)
    history = _read_history(ns.history) if ns.history is not None else []
    disk = _open_disk(ns.disk) if (ns.disk is not None or ns.history is not None) else None
    kernel = Kernel(cpu, peripherals=devices, params=params, disk=disk)
    proc = kernel.spawn(ram_tokens=ns.ram)
    if history:
        from rich.progress import Progress

        with Progress(console=_err, transient=True, disable=quiet) as bar:
            task = bar.add_task("loading history", total=len(history))
            for role, text, source in history:
                kernel.feed(proc, text, role=role, source=source)  # type: ignore[arg-type]
                bar.advance(task)
    observe = None if quiet else (lambda e: _show(e, verbose=ns.verbose))
    try:
        reply = kernel.run(proc, ns.question, observe=observe)
    except RunError as exc:
        if quiet:
            print(json.dumps({"answer": None, "error": str(exc),
                              "trace": [e.model_dump(mode="json") for e in exc.trace]}))
            return 1
        raise
    finally:
        kernel.close()
    if quiet:
        out = {"answer": reply.text, "trace": [e.model_dump(mode="json") for e in reply.trace]}
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(reply.text)
    return 0


def _cmd_models(ns: argparse.Namespace) -> int:
    from llmos.cpu.models import DEFAULT, MODELS, installed

    for name, model in MODELS.items():
        label = f"{name} (default)" if name == DEFAULT else name
        status = "installed" if installed(name) else f"not installed: {model.install}"
        print(f"{label:20} {model.title:30} {model.size / 1e6:5.0f} MB  {model.quantisation}  "
              f"{model.licence:20} {status}")
    return 0


def _cmd_peripherals(ns: argparse.Namespace) -> int:
    from llmos.kernel.loader import signature

    console = Console(highlight=False)
    for name, cls in sorted(discover().items()):
        try:
            specs = cls().syscalls()
            doc = cls().description
        except TypeError:
            where = f"{cls.__module__}.{cls.__name__}"
            console.print(f"[bold]{escape(name)}[/]  (needs configuration: {escape(where)})")
            continue
        console.print(f"[bold]{escape(name)}[/]  {escape(doc)}")
        for spec in specs.values():
            console.print(f"  {escape(signature(spec))}  [dim]{escape(spec.doc)}[/]")
    for name, why in sorted(discovery_errors().items()):
        console.print(f"[red]{escape(name)}: failed to load: {escape(why)}[/]")
    for dev in _mount_mcp(ns.mcp):
        try:
            console.print(f"[bold]{escape(dev.name)}[/]  {escape(dev.description)}")
            for spec in dev.syscalls().values():
                flag = "  [yellow](sensitive)[/]" if spec.sensitive else ""
                console.print(f"  {escape(signature(spec))}  [dim]{escape(spec.doc)}[/]{flag}")
        finally:
            dev.close()
    return 0


def _cmd_serve_mcp(ns: argparse.Namespace) -> int:
    from llmos.peripherals import Browser, FileSystem, Python, ReadOnly
    from llmos.serve import serve_mcp

    devices: list[Peripheral] = []
    for name in (n.strip() for n in ns.peripherals.split(",") if n.strip()):
        if name == "python":
            devices.append(Python())
        elif name == "browser":
            devices.append(Browser())
        elif name == "fs":
            if ns.root is None:
                raise UsageError("serving fs needs --root DIR (the folder it is jailed to)")
            fs = FileSystem(ns.root)
            devices.append(ReadOnly(fs) if ns.read_only else fs)
        else:
            raise UsageError(f"serve-mcp serves python, fs and browser, not {name!r}")
    if not devices:
        raise UsageError("serve-mcp needs at least one device in --peripherals")
    serve_mcp(devices)
    return 0


def _cmd_disk(ns: argparse.Namespace) -> int:
    from rich.table import Table

    disk = _open_disk(ns.disk)
    console = Console(highlight=False)
    if ns.disk_command == "ls":
        table = Table("id", "pid", "kind", "trust", "source", "text")
        for p in disk.list(ns.pid, limit=ns.limit):
            table.add_row(p.id, str(p.pid), p.kind, p.trust, escape(p.source),
                          escape(p.text[:70]))
        console.print(table)
    elif ns.disk_command == "search":
        table = Table("score", "id", "pid", "trust", "source", "text")
        for h in disk.search(ns.query, k=ns.k, pid=ns.pid):
            table.add_row(f"{h.score:.3f}", h.page.id, str(h.page.pid), h.page.trust,
                          escape(h.page.source), escape(h.page.text[:70]))
        console.print(table)
    elif ns.disk_command == "audit":
        table = Table("source", "trust", "pages")
        for row in disk.audit():
            table.add_row(escape(row.source), row.trust, str(row.count))
        console.print(table)
    else:
        console.print(f"deleted {disk.delete(pid=ns.pid)} pages of process {ns.pid}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmos`` command; returns the exit status."""
    parser = _build_parser()
    ns = parser.parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _cmd_run,
        "models": _cmd_models,
        "peripherals": _cmd_peripherals,
        "disk": _cmd_disk,
        "serve-mcp": _cmd_serve_mcp,
    }
    try:
        return commands[ns.command](ns)
    except LLMOSError as exc:
        if ns.debug:
            raise
        _err.print(f"[red]error:[/] {escape(str(exc))}")
        return 1
    except KeyboardInterrupt:
        _err.print("[red]interrupted[/]")
        return 130
    except Exception as exc:  # a bug: say so in one line unless --debug
        if ns.debug:
            raise
        _err.print(
            f"[red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))} "
            "(run with --debug for the traceback)"
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
