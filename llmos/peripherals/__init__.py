"""Devices a process may call, and the kit for writing your own.

Subclass :class:`Peripheral` with ``@syscall`` methods, or turn a typed function into a device
with ``@peripheral``; ship it in a package under the entry-point group ``llmos.peripherals``.
"""

from llmos.errors import Fault
from llmos.peripherals.base import (
    Document,
    Example,
    Limits,
    Peripheral,
    SyscallSpec,
    discover,
    free_text,
    grounded,
    peripheral,
    quote,
    syscall,
)
from llmos.peripherals.browser import Browser
from llmos.peripherals.calculator import Calculator
from llmos.peripherals.filesystem import FileSystem
from llmos.peripherals.functions import Functions
from llmos.peripherals.mcp import MCP
from llmos.peripherals.python import Python
from llmos.peripherals.wrappers import NeedsApproval, Prefixed, ReadOnly

__all__ = [  # noqa: RUF022 - plain sorted() order, as tests/test_exports.py pins
    "Browser",
    "Calculator",
    "Document",
    "Example",
    "Fault",
    "FileSystem",
    "Functions",
    "Limits",
    "MCP",
    "NeedsApproval",
    "Peripheral",
    "Prefixed",
    "Python",
    "ReadOnly",
    "SyscallSpec",
    "discover",
    "free_text",
    "grounded",
    "peripheral",
    "quote",
    "syscall",
]
