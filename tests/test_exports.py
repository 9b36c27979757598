"""The public surface is pinned: each package's __all__ is sorted and names exactly its exports."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "llmos": {
        "CPU", "CPUError", "ContextOverflow", "Decoding", "DiskError", "Fault", "HTTPCPU", "Kernel",
        "LLMOSError", "LlamaCPU", "Page", "Params", "PeripheralError", "Policy", "ProcState",
        "Process", "Quota", "QuotaExceeded", "Reply", "RunError", "SandboxViolation",
        "StepLimitExceeded", "UsageError",
    },
    "llmos.peripherals": {
        "Browser", "Calculator", "Document", "Example", "Fault", "FileSystem", "Functions",
        "Limits", "MCP", "NeedsApproval", "Peripheral", "Prefixed", "Python", "ReadOnly",
        "SyscallSpec", "discover", "free_text", "grounded", "peripheral", "quote", "syscall",
    },
    "llmos.cpu": {"CPU", "Decoding", "HTTPCPU", "LlamaCPU", "Switch", "Switching"},
    "llmos.memory": {
        "RAM", "AuditRow", "ChromaDisk", "Disk", "Hit", "Page", "PageKind", "PageStats",
        "Pager", "Trust",
    },
    "llmos.kernel": {
        "Answered", "Called", "Decoded", "Event", "Faulted", "Kernel", "Outcome", "Paged",
        "Policy", "ProcState", "ProcStats", "Process", "Quota", "Reply", "Scheduled",
        "SyscallTable", "Voted",
    },
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_all_is_pinned_sorted_and_importable(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    assert set(exported) == PUBLIC[name]
    for attr in exported:
        assert getattr(module, attr) is not None


def test_every_error_derives_from_the_base_and_fault_does_not() -> None:
    import llmos.errors as errors

    for attr in errors.__all__:
        cls = getattr(errors, attr)
        if attr == "Fault":
            assert not issubclass(cls, errors.LLMOSError)
        else:
            assert issubclass(cls, errors.LLMOSError)


def test_import_llmos_loads_no_backend() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmos, llmos.memory, llmos.peripherals; "
        "print([m for m in ('chromadb', 'llama_cpp', 'llguidance', 'onnxruntime', 'mcp') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
