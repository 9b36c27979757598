"""System 2: decode several candidates for one step and let them vote.

With ``Params.samples`` above 1, a step decodes the greedy candidate first and then
``samples - 1`` more at ``Params.sample_temperature`` (each with its own seed), all under the
same grammar; :func:`vote` picks the call most of them agree on, and the step goes on with it.
The trace records every candidate (a :class:`~llmos.trace.Voted` event), and the step's cost
(decoded and forced tokens, seconds) is the sum over candidates, because the CPU paid for all.

The kernel compares what the model wrote; it never computes an answer itself (DESIGN §8).

Neighbours: the driver (``llmos.kernel.sched``) calls :func:`sample` to serve a turn's
``NeedCPU``; ``llmos.kernel.trap`` parses each candidate.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from llmos.cpu.base import CPU, Decoding
from llmos.errors import Fault
from llmos.kernel.syscall import ANSWER
from llmos.kernel.trap import decode_call
from llmos.params import Params
from llmos.trace import Voted

if TYPE_CHECKING:
    from llmos.kernel.cycle import NeedCPU

__all__ = ["sample", "vote"]


def sample(cpu: CPU, req: NeedCPU, params: Params, *, pid: int, slot: Hashable) -> Decoding:
    """Decode one instruction for ``req``; with System 2 on, several candidates, chosen by vote."""
    first = cpu.complete(
        req.prompt, schema=req.schema, max_tokens=req.max_tokens,
        temperature=params.temperature, seed=params.seed, slot=slot,
    )
    if params.samples <= 1 or req.schema is None:
        return first
    candidates = [first] + [
        cpu.complete(
            req.prompt, schema=req.schema, max_tokens=req.max_tokens,
            temperature=params.sample_temperature, seed=params.seed + i, slot=slot,
        )
        for i in range(1, params.samples)
    ]
    chosen, votes = vote(candidates)
    req.trace.append(Voted(pid=pid, step=req.step, candidates=[c.text for c in candidates],
                           chosen=chosen, votes=votes))
    # the step cost every candidate (the prompt was prefilled once, for the first): the
    # stats and the trace say so
    return dataclasses.replace(
        candidates[chosen],
        reused_tokens=first.reused_tokens,
        prefilled_tokens=first.prefilled_tokens,
        decoded_tokens=sum(c.decoded_tokens for c in candidates),
        forced_tokens=sum(c.forced_tokens for c in candidates),
        seconds=sum(c.seconds for c in candidates),
    )


def vote(candidates: Sequence[Decoding]) -> tuple[int, int]:
    """Choose among a step's candidates by agreement; return (index, votes).

    First the syscall most candidates make; then, among those, the arguments most of them
    write (every answer's text differs, so answers vote by name alone). Ties go to the
    earlier candidate (the greedy one comes first). A candidate cut short or malformed has
    no vote.
    """
    keys: list[tuple[str, str] | None] = []
    for c in candidates:
        try:
            call = decode_call(c.text) if c.stop != "length" else None
        except Fault:
            call = None
        if call is None:
            keys.append(None)
        elif call.name == ANSWER:
            keys.append((ANSWER, ""))
        else:
            keys.append((call.name, json.dumps(call.args, sort_keys=True)))
    names = Counter(k[0] for k in keys if k is not None)
    if not names:
        return 0, 0
    top = max(names.values())
    name = next(k[0] for k in keys if k is not None and names[k[0]] == top)
    same = Counter(k for k in keys if k is not None and k[0] == name)
    best = max(same.values())
    index = next(i for i, k in enumerate(keys) if k is not None and k[0] == name
                 and same[k] == best)
    return index, best
