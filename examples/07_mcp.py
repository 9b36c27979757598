"""An MCP server's tool, called by the local model through the kernel.

Shows: mounting a Model Context Protocol server with one line (``MCP("command")``), its tools
becoming syscalls with their own schemas, one worked example written for the tool, and the
result coming back *untrusted* (the trace says so, and names the tool as its source).

This file is both sides: run with ``--serve`` it is a small MCP server written with the
official SDK (a depot's stock levels); run plainly it starts that server as a subprocess over
stdio and asks the default model a question it can only answer through the server.

Run:
    python examples/07_mcp.py
"""

from __future__ import annotations

import sys

from llmos import Kernel
from llmos.kernel import Called
from llmos.peripherals import MCP, Example

STOCK = {"bolt": 120, "nut": 4500, "washer": 35}


def serve() -> None:
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    server = MCPServer("depot")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    def stock_level(item: str) -> int:
        """How many of an item the depot has in stock."""
        return STOCK.get(item.lower().rstrip("s"), 0)

    server.run()  # stdio


def main() -> None:
    # a worked example for the tool, about another item than the question's
    example = Example(
        question="How many washers does the depot have in stock?",
        calls=(("depot.stock_level", {"item": "washers"}, "35"),),
        answer="The depot has 35 washers in stock.",
    )
    depot = MCP([sys.executable, __file__, "--serve"], name="depot", examples=[example])
    kernel = Kernel(peripherals=[depot])  # mounting starts the server and lists its tools
    try:
        print("syscalls:", ", ".join(depot.syscalls()))
        question = "How many bolts does the depot have in stock?"
        reply = kernel.run(kernel.spawn(), question)
        print(f"Q: {question}")
        for event in reply.trace:
            if isinstance(event, Called):
                trust = "trusted" if event.trusted else f"untrusted, from {event.source}"
                print(f"   called {event.syscall}({event.args}) -> {event.result} ({trust})")
        print(f"A: {reply.text}")
    finally:
        kernel.close()  # stops the server


if __name__ == "__main__":
    serve() if "--serve" in sys.argv else main()
