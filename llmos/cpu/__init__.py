"""CPU backends: the model that decodes the next instruction."""

from llmos.cpu.base import CPU, Decoding, Switch, Switching
from llmos.cpu.http import HTTPCPU
from llmos.cpu.llama import LlamaCPU

__all__ = ["CPU", "Decoding", "HTTPCPU", "LlamaCPU", "Switch", "Switching"]  # noqa: RUF022
