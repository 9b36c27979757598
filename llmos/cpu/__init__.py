"""CPU backends: the model that decodes the next instruction."""

from llmos.cpu.base import CPU, Decoding, Switch, Switching
from llmos.cpu.llama import LlamaCPU

__all__ = ["CPU", "Decoding", "LlamaCPU", "Switch", "Switching"]
