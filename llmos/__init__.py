"""llmos: a local LLM as a small operating system for agents.

The model is the CPU, the context window is RAM, a vector store is disk, tools are
peripherals, and a kernel runs agent processes. Start with :class:`Kernel`.
"""

from llmos.cpu.base import CPU, Decoding
from llmos.cpu.http import HTTPCPU
from llmos.cpu.llama import LlamaCPU
from llmos.errors import (
    ContextOverflow,
    CPUError,
    DiskError,
    Fault,
    LLMOSError,
    PeripheralError,
    QuotaExceeded,
    RunError,
    SandboxViolation,
    StepLimitExceeded,
    UsageError,
)
from llmos.kernel.boot import Kernel
from llmos.kernel.cycle import Reply
from llmos.kernel.policy import Policy
from llmos.kernel.proc import Process, ProcState, Quota
from llmos.memory.page import Page
from llmos.params import Params

__all__ = [  # noqa: RUF022 (plain sorted order, as the export test pins)
    "CPU",
    "CPUError",
    "ContextOverflow",
    "Decoding",
    "DiskError",
    "Fault",
    "HTTPCPU",
    "Kernel",
    "LLMOSError",
    "LlamaCPU",
    "Page",
    "Params",
    "PeripheralError",
    "Policy",
    "ProcState",
    "Process",
    "Quota",
    "QuotaExceeded",
    "Reply",
    "RunError",
    "SandboxViolation",
    "StepLimitExceeded",
    "UsageError",
]
