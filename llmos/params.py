"""Every tunable knob of the kernel in one frozen place, each with its default and unit."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Params"]


@dataclass(frozen=True)
class Params:
    """Kernel parameters (after xv6 ``param.h``): one commented default per knob."""

    max_steps: int = 6  # instructions per run; the last may only answer
    max_call_tokens: int = 256  # tokens one decoded instruction may take (a short program fits)
    answer_max_chars: int = 300  # characters in one answer (keeps a base model from rambling)
    ram_tokens: int | None = None  # RAM budget per process; None = n_ctx - max_call_tokens
    temperature: float = 0.0  # 0 = greedy decoding; above 0 samples with `seed`
    seed: int = 0  # sampling seed, so runs repeat
    samples: int = 1  # System 2: candidates decoded per step, chosen by vote (1 = off)
    sample_temperature: float = 0.8  # temperature of the candidates after the first
    examples_per_device: int = 3  # worked examples per device (a base model imitates them);
    # -1 shows none at all, not even the kernel's generic ones
    ground: bool = True  # decode under the step's grammar, grounded fields narrowed to RAM
    ground_values: bool = True  # also ground undeclared string/number args (free_text opts out)
    max_decoded_tokens: int | None = None  # tokens the CPU may sample per run; None = no quota
    require_numbers: bool = True  # a syscall whose required number RAM cannot fill is not offered
    answer_last: bool = True  # the last step may only answer (a run ends with what it found)
    max_device_calls: int | None = None  # device calls per process; None = no quota
    max_seconds: float | None = None  # wall-clock seconds per run; None = no quota
    page_high: float = 0.9  # page out when RAM passes this share of its budget
    page_low: float = 0.6  # ...down to this share (batches keep the KV cache valid longer)
    page_in_k: int = 2  # pages demand paging may bring back per step (0 = off)
    page_in_threshold: float = 0.45  # cosine similarity a page needs to be paged in
    summary_tokens: int = 40  # tokens the CPU may write per page-out summary (0 = extractive)
    slice_steps: int = 2  # decode steps a process may take in run_all before yielding the CPU
    aging: int = 3  # slices a ready process is passed over before its priority rises by one
    spotlight_key: str | None = None  # keys spotlight tags; None = a fresh secret per kernel
    strict: bool = False  # a peripheral that crashes raises PeripheralError instead of a fault
