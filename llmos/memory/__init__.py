"""Memory: RAM (the context window), the pager, and disk (the page store)."""

from llmos.memory.disk import AuditRow, ChromaDisk, Disk, Hit
from llmos.memory.embed import MiniLMEmbedder
from llmos.memory.page import Page, PageKind, Trust
from llmos.memory.pager import MemoryDevice, Pager
from llmos.memory.ram import RAM

__all__ = [
    "RAM",
    "AuditRow",
    "ChromaDisk",
    "Disk",
    "Hit",
    "MemoryDevice",
    "MiniLMEmbedder",
    "Page",
    "PageKind",
    "Pager",
    "Trust",
]
