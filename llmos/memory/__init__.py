"""Memory: RAM (the context window), the pager, and disk (the page store).

The memory wing imports nothing of the kernel: the pager works on a ``RAM`` and its
``PageStats``; the ``memory`` device the model calls is the kernel's (``llmos.kernel.memdev``).

The embedder (``llmos.memory.embed.MiniLMEmbedder``) is imported from its module: it loads
chromadb, which ``import llmos`` does not.
"""

from llmos.memory.chroma import ChromaDisk
from llmos.memory.disk import AuditRow, Disk, Hit
from llmos.memory.page import Page, PageKind, Trust
from llmos.memory.pager import Pager, PageStats
from llmos.memory.ram import RAM

__all__ = [  # noqa: RUF022 (plain sorted order, as the export test pins)
    "AuditRow",
    "ChromaDisk",
    "Disk",
    "Hit",
    "Page",
    "PageKind",
    "PageStats",
    "Pager",
    "RAM",
    "Trust",
]
