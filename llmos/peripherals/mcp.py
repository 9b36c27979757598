"""MCP servers as peripherals: a Model Context Protocol server's tools become syscalls.

``MCP("python weather_server.py")`` starts the server as a subprocess (stdio transport);
``MCP(url="http://127.0.0.1:8000/mcp")`` connects over streamable HTTP. Mounting lists the
server's tools: each becomes the syscall ``<name>.<tool>``, decoded under the tool's input
schema (through :class:`~llmos.peripherals.Functions`, so an unsupported schema keyword is a
``UsageError`` naming the tool). The official ``mcp`` SDK speaks the protocol.

What the kernel enforces, whatever the server is:
- results come back as :class:`Document` pages, so they enter RAM *untrusted* (text, error
  text and JSON-RPC error messages alike); non-text content is named, not shown;
- tool annotations map onto llmos's flag: a tool that is not declared read-only, or that may
  reach an open world (the MCP default), is ``sensitive`` and runs under the taint policy;
- a server that dies, hangs or answers garbage makes that call a fault within
  ``limits.timeout_s``; the kernel keeps running; results are cut at ``max_output_chars``.

The SDK is asynchronous and llmos is not: each mounted server gets one event loop on its own
thread, which holds the session open from ``open`` to ``close``; a call is a coroutine
submitted to that loop from the kernel's device thread.

Neighbours: ``llmos.peripherals.functions`` turns the schemas into argument models;
``llmos.serve`` is the other direction (llmos's devices served to MCP clients).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import json
import shlex
import tempfile
import threading
from collections.abc import Collection, Coroutine, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from llmos.errors import Fault, PeripheralError, UsageError
from llmos.peripherals.base import _NAME, Document, Example, Limits, Peripheral, SyscallSpec
from llmos.peripherals.functions import Functions

if TYPE_CHECKING:
    import mcp_types

__all__ = ["MCP"]

_CONNECTION_CLOSED = -32000  # the JSON-RPC code the SDK uses when the server has gone
MAX_DESCRIPTION_CHARS = 1000  # a tool's description is shown to the model: bound what it costs
_T = TypeVar("_T")


def require_sdk() -> Any:
    """The ``mcp`` package, or a UsageError naming the extra that installs it."""
    try:
        import mcp
    except ImportError as exc:  # pragma: no cover - the extra is part of the dev install
        raise UsageError(
            "MCP support needs the mcp package: pip install 'llmos[mcp]'", code="mcp-missing"
        ) from exc
    return mcp


class MCP(Peripheral):
    """Tools of a Model Context Protocol server, each one a syscall.

    Args:
        command: the server's command line (a string is split like a shell would, without
            running a shell), for the stdio transport.
        url: the server's endpoint, for the streamable HTTP transport (instead of ``command``).
        name: the device's name; its syscalls are ``<name>.<tool>``.
        tools: mount only these tools (default: all the server lists).
        limits: the deadline of each call and the output cap.
        start_timeout_s: seconds the server may take to start and list its tools.
        examples: worked examples for the model, written with the syscall names
            ``<name>.<tool>`` (a small model calls a tool far more reliably after one).
        env: extra environment variables for a stdio server (it inherits only a safe few).
        cwd: the working directory of a stdio server.

    Raises:
        UsageError: neither or both of ``command`` and ``url``; a tool's schema uses a feature
            llmos cannot decode (raised on mount, naming the tool and the feature).
        PeripheralError: the server could not be started or did not answer (on mount).
    """

    def __init__(
        self,
        command: str | Sequence[str] | None = None,
        *,
        url: str | None = None,
        name: str = "mcp",
        tools: Collection[str] | None = None,
        limits: Limits | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        start_timeout_s: float = 60.0,
        examples: Iterable[Example] = (),
    ) -> None:
        if (command is None) == (url is None):
            raise UsageError("MCP needs either a command (stdio) or url= (streamable HTTP)")
        argv = shlex.split(command) if isinstance(command, str) else list(command or [])
        if command is not None and not argv:
            raise UsageError("MCP was given an empty command")
        if not _NAME.match(name):
            raise UsageError(f"MCP device name {name!r} must be letters, digits, '_', '.', '-'",
                             code="peripheral-name")
        self.name = name
        self.argv, self.url = argv, url
        self.wanted = None if tools is None else set(tools)
        self.env, self.cwd = dict(env or {}), cwd
        self.start_timeout_s = start_timeout_s
        self.examples = tuple(examples)
        if limits is not None:
            self.limits = limits
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: Any = None
        self._stop: asyncio.Event | None = None
        self._main: cf.Future[None] | None = None
        self._functions: Functions | None = None
        self._specs: dict[str, SyscallSpec] = {}
        # a stdio server's stderr: kept (not shown) so a failed start can quote its end
        self._stderr: IO[bytes] | None = None

    @property
    def where(self) -> str:
        """The server's command line or URL."""
        return self.url or shlex.join(self.argv)

    @property
    def description(self) -> str:
        """Which server this is."""
        return f"Tools of the MCP server {self.where}."

    # -- mount and unmount

    def open(self) -> None:
        """Start (or connect to) the server and list its tools."""
        if self._functions is not None:
            return
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives until close()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"llmos-mcp-{self.name}", daemon=True
        )
        self._thread.start()
        ready: cf.Future[list[mcp_types.Tool]] = cf.Future()
        self._main = asyncio.run_coroutine_threadsafe(self._serve(ready), self._loop)
        try:
            listed = ready.result(timeout=self.start_timeout_s)
        except cf.TimeoutError:
            self.close()
            raise PeripheralError(
                f"the MCP server {self.where!r} did not answer within "
                f"{self.start_timeout_s:g} s; check the command, or raise start_timeout_s"
            ) from None
        except Exception as exc:
            tail = self._stderr_tail()
            self.close()
            raise PeripheralError(
                f"the MCP server {self.where!r} could not be started: "
                f"{type(exc).__name__}: {exc}{tail}"
            ) from exc
        try:
            self._mount(listed)
        except BaseException:
            self.close()
            raise

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, 2)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 800))
            tail = self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f"; its last words on stderr: {tail}" if tail else ""

    def _mount(self, listed: list[mcp_types.Tool]) -> None:
        chosen = [t for t in listed if self.wanted is None or t.name in self.wanted]
        missing = (self.wanted or set()) - {t.name for t in listed}
        if missing:
            raise UsageError(
                f"the MCP server {self.name!r} has no tool named {sorted(missing)}; it lists "
                f"{sorted(t.name for t in listed)}",
                code="mcp-tool",
            )
        if not chosen:
            raise UsageError(f"the MCP server {self.name!r} lists no tools",
                             code="peripheral-empty")
        definitions, sensitive = [], set()
        for tool in chosen:
            definitions.append({
                "name": tool.name,
                "description": (tool.description or tool.title or tool.name)[
                    :MAX_DESCRIPTION_CHARS
                ],
                "parameters": tool.input_schema,
            })
            if _sensitive(tool.annotations):
                sensitive.add(tool.name)
        try:
            self._functions = Functions(
                definitions, self._call_tool, name=self.name, sensitive=sensitive
            )
        except UsageError as exc:
            raise UsageError(
                f"MCP server {self.name!r}: {exc}; mount the others with tools=[...]",
                code=exc.code,
            ) from exc
        self._specs = {
            f"{self.name}.{n}": replace(s, name=f"{self.name}.{n}")
            for n, s in self._functions.syscalls().items()
        }

    def close(self) -> None:
        """End the session (a stdio server is stopped) and the event loop."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._stop is not None:
            loop.call_soon_threadsafe(self._stop.set)
        if self._main is not None:
            try:  # the SDK stops a stdio server politely first, then kills it: seconds, bounded
                self._main.result(timeout=10)
            except Exception:
                self._main.cancel()
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not loop.is_running():
            loop.close()
        if self._stderr is not None:
            self._stderr.close()
        self._functions, self._session, self._specs = None, None, {}

    # -- the session, on the loop's thread

    def _transport(self) -> AbstractAsyncContextManager[Any]:
        sdk = require_sdk()
        if self.url is not None:
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(self.url)
        params = sdk.StdioServerParameters(
            command=self.argv[0], args=self.argv[1:], env=self.env or None, cwd=self.cwd,
            encoding_error_handler="replace",  # bytes that are not UTF-8 must not end the session
        )
        return sdk.stdio_client(params, errlog=self._stderr)  # type: ignore[no-any-return]

    async def _serve(self, ready: cf.Future[list[mcp_types.Tool]]) -> None:
        sdk = require_sdk()
        self._stop = asyncio.Event()
        try:
            async with self._transport() as (read, write), sdk.ClientSession(read, write) as s:
                await s.initialize()
                tools: list[mcp_types.Tool] = []
                cursor = None
                while True:
                    page = await s.list_tools(
                        params=sdk.types.PaginatedRequestParams(cursor=cursor) if cursor else None
                    )
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                self._session = s
                ready.set_result(tools)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            self._session = None

    def _submit(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._loop is None:
            coro.close()
            raise Fault(f"the MCP server {self.name!r} is not mounted")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=self.limits.timeout_s + 1)
        except cf.TimeoutError:
            future.cancel()
            raise Fault(
                f"the MCP server {self.name!r} did not answer within "
                f"{self.limits.timeout_s:g} s; try another approach"
            ) from None

    async def _request(self, tool: str, args: dict[str, Any]) -> Any:
        if self._session is None:
            raise Fault(f"the MCP server {self.name!r} has stopped; it cannot run {tool!r}")
        try:
            return await asyncio.wait_for(
                self._session.call_tool(tool, args), timeout=self.limits.timeout_s
            )
        except TimeoutError:
            raise Fault(
                f"the MCP server {self.name!r} did not answer {tool!r} within "
                f"{self.limits.timeout_s:g} s (it may have stopped); try another approach"
            ) from None

    def _call_tool(self, tool: str, args: dict[str, Any]) -> Document:
        source = f"mcp:{self.name}/{tool}"
        try:
            result = self._submit(self._request(tool, args))
        except Fault:
            raise
        except Exception as exc:
            error = getattr(exc, "error", None)
            code = getattr(error, "code", _CONNECTION_CLOSED)
            message = getattr(error, "message", None)
            if code != _CONNECTION_CLOSED and isinstance(message, str):
                # the server's own words: outside text, so a Document (untrusted), not a Fault
                return Document(f"the server refused the call: {message}", source)
            raise Fault(
                f"the MCP server {self.name!r} failed on {tool!r} ({type(exc).__name__}); it "
                "may have stopped; try another approach"
            ) from None
        text = _text(result, self.limits.max_output_chars)
        if getattr(result, "is_error", False):
            text = f"the tool reported an error: {text}"
        return Document(text, source)

    # -- the peripheral contract

    def syscalls(self) -> dict[str, SyscallSpec]:
        """One syscall per tool, ``<name>.<tool>`` (mounting first if needed)."""
        if self._functions is None:
            self.open()
        return dict(self._specs)

    def call(self, method: str, args: BaseModel) -> object:
        if self._functions is None:
            raise Fault(f"the MCP server {self.name!r} is not mounted")
        return self._functions.call(method, args)


def _sensitive(annotations: mcp_types.ToolAnnotations | None) -> bool:
    """Not declared read-only, or may reach an open world (MCP's defaults for both)."""
    if annotations is None:
        return True
    return annotations.read_only_hint is not True or annotations.open_world_hint is not False


def _text(result: Any, cap: int) -> str:
    """The text of a tool result; other content is named, not shown. Stops past ``cap``."""
    parts: list[str] = []
    size = 0
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "unknown")
        if kind == "text":
            piece = str(block.text)
        elif kind == "resource" and isinstance(getattr(block.resource, "text", None), str):
            piece = str(block.resource.text)
        elif kind == "resource_link":
            piece = f"[a link to the resource {str(block.uri)[:200]!r}]"
        else:
            mime = getattr(block, "mime_type", None)
            piece = f"[{kind} content{f' ({mime[:60]})' if isinstance(mime, str) else ''}, " \
                    "not shown]"
        parts.append(piece)
        size += len(piece)
        if size > cap:  # the kernel cuts at the cap and says so; the rest is never read
            break
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False))
    return "\n".join(parts) if parts else "(the tool returned nothing)"
