"""llmos's devices as an MCP server: other agents call them behind llmos's walls.

``llmos serve-mcp --peripherals python,fs,browser --root DIR`` serves the sandboxed Python,
the jailed file system and the SSRF-walled browser over stdio to any Model Context Protocol
client. Every tool call goes through a :class:`~llmos.kernel.syscall.SyscallTable`, the same
door the kernel uses: arguments are validated against the syscall's schema before the device
runs, the device's :class:`~llmos.peripherals.Limits` hold (deadline, output cap), and a refusal
(``Fault``: a path outside the root, a private address) comes back as a tool error whose text
says why. Nothing the client sends reaches a device unvalidated.

What the client receives is the device's output, not a verdict on it: text a device read from
outside (a web page, a file) is as untrusted for the client as it is for llmos, and MCP has no
field to say so; the tool's annotations say which calls write or execute (``readOnlyHint``).

Neighbours: ``llmos.peripherals.mcp`` is the other direction (an MCP server mounted as a
device); ``llmos.cli`` parses the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmos.kernel.syscall import ANSWER, SyscallTable
from llmos.peripherals.base import Peripheral
from llmos.peripherals.mcp import require_sdk

__all__ = ["mcp_server", "serve_mcp"]


def mcp_server(peripherals: Sequence[Peripheral], *, name: str = "llmos") -> Any:
    """An MCP server (the SDK's low-level ``Server``) whose tools are the devices' syscalls.

    The devices must be open (mounted); :func:`serve_mcp` opens and closes them.
    """
    sdk = require_sdk()
    import anyio.to_thread
    from mcp.server.lowlevel import Server

    types = sdk.types
    table = SyscallTable(peripherals)
    tools = [
        types.Tool(
            name=spec.name,
            description=spec.doc,
            input_schema=spec.args.model_json_schema(by_alias=True),
            annotations=types.ToolAnnotations(
                read_only_hint=not spec.sensitive, destructive_hint=spec.sensitive
            ),
        )
        for spec in table.specs.values()
        if spec.name != ANSWER
    ]
    known = {t.name for t in tools}

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: Any) -> Any:
        if params.name not in known:
            text, failed = f"unknown tool {params.name!r}; the tools are: {sorted(known)}", True
        else:
            # a device call blocks (a sandbox, a socket): off the event loop, under its limits
            outcome = await anyio.to_thread.run_sync(
                table.dispatch, params.name, dict(params.arguments or {})
            )
            text, failed = outcome.text, outcome.status != "ok"
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], is_error=failed
        )

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def serve_mcp(peripherals: Sequence[Peripheral], *, name: str = "llmos") -> None:
    """Serve the devices over stdio until the client goes away (blocks)."""
    import anyio
    from mcp.server.stdio import stdio_server

    for dev in peripherals:
        dev.open()
    try:
        server = mcp_server(peripherals, name=name)

        async def run() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(run)
    finally:
        for dev in peripherals:
            dev.close()
