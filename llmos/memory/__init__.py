"""Memory: RAM (the context window), the pager, and disk (the page store).

The embedder (``llmos.memory.embed.MiniLMEmbedder``) is imported from its module: it loads
chromadb, which ``import llmos`` does not.
"""

from llmos.memory.disk import AuditRow, ChromaDisk, Disk, Hit
from llmos.memory.page import Page, PageKind, Trust
from llmos.memory.pager import MemoryDevice, Pager
from llmos.memory.ram import RAM

__all__ = [  # noqa: RUF022 (plain sorted order, as the export test pins)
    "AuditRow",
    "ChromaDisk",
    "Disk",
    "Hit",
    "MemoryDevice",
    "Page",
    "PageKind",
    "Pager",
    "RAM",
    "Trust",
]
