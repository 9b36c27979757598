"""The kernel's contracts: processes, the instruction cycle, syscalls, policy and the trace.

The trace events are defined in ``llmos.trace`` (below every layer) and re-exported here.
"""

from llmos.kernel.boot import Kernel
from llmos.kernel.cycle import Reply
from llmos.kernel.policy import Policy
from llmos.kernel.proc import Process, ProcState, ProcStats, Quota
from llmos.kernel.syscall import Outcome, SyscallTable
from llmos.trace import Answered, Called, Decoded, Event, Faulted, Paged, Scheduled, Voted

__all__ = [
    "Answered",
    "Called",
    "Decoded",
    "Event",
    "Faulted",
    "Kernel",
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
    "Voted",
]
