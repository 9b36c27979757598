"""The kernel's contracts: processes, the instruction cycle, syscalls, policy and the trace."""

from llmos.kernel.boot import Kernel
from llmos.kernel.policy import Policy
from llmos.kernel.proc import Process, ProcState, ProcStats, Quota
from llmos.kernel.sched import NeedCPU, NeedDevice, Reply, drive, turn
from llmos.kernel.syscall import Outcome, SyscallTable
from llmos.trace import Answered, Called, Decoded, Event, Faulted, Paged, Scheduled

__all__ = [
    "Answered",
    "Called",
    "Decoded",
    "Event",
    "Faulted",
    "Kernel",
    "NeedCPU",
    "NeedDevice",
    "Outcome",
    "Paged",
    "Policy",
    "ProcState",
    "ProcStats",
    "Process",
    "Quota",
    "Reply",
    "Scheduled",
    "SyscallTable",
    "drive",
    "turn",
]
