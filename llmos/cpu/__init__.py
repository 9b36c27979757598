"""CPU backends: the model that decodes the next instruction."""

from llmos.cpu.base import CPU, Decoding
from llmos.cpu.llama import LlamaCPU

__all__ = ["CPU", "Decoding", "LlamaCPU"]
