"""llmos-dice: an example plugin package that adds one peripheral, ``dice``.

It shows the third way to make a peripheral: a separate installable package whose
``pyproject.toml`` registers the class under the entry-point group ``llmos.peripherals``.
The device holds no global state: its random generator is seeded per instance, so tests are
reproducible.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

from llmos.peripherals.base import Example, Fault, Limits, Peripheral, syscall

__all__ = ["Dice", "RollArgs"]


class RollArgs(BaseModel):
    """Arguments of ``dice.roll``."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(1, ge=1, le=100, description="How many dice to roll (1 to 100).")
    sides: int = Field(6, ge=2, le=1000, description="Faces on each die, e.g. 6 or 20.")


class Dice(Peripheral):
    """Rolls fair dice and returns each face and the total."""

    name = "dice"
    limits = Limits(timeout_s=2.0, max_output_chars=1000)
    examples: tuple[Example, ...] = (
        Example(
            question="Roll two six-sided dice for me.",
            calls=(("dice.roll", {"count": 2, "sides": 6}, "rolled 3, 5; total 8"),),
            answer="You rolled 3 and 5, a total of 8.",
        ),
    )

    def __init__(self, *, seed: int | None = None) -> None:
        """Create the device.

        Args:
            seed: seed of this device's generator; None draws one from the OS.
        """
        self._rng = random.Random(seed)

    @syscall
    def roll(self, args: RollArgs) -> str:
        """Roll `count` dice with `sides` faces each; returns the faces and their total."""
        if args.count * args.sides > 10_000:
            raise Fault("that is too many faces to roll at once; roll fewer or smaller dice")
        faces = [self._rng.randint(1, args.sides) for _ in range(args.count)]
        return f"rolled {', '.join(map(str, faces))}; total {sum(faces)}"
