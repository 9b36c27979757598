"""Python analyst: the model answers by writing a small program for the sandboxed python device.

Run it from the repository root (it loads the default model, ~490 MB, once):

    python examples/03_python_analyst.py

What it shows:
- ``Kernel(peripherals=[Python()])`` mounts only the python device, so the model's one way to
  compute is to write a program; the program runs in a walled-off worker process;
- the model decides what program to write; the kernel only gives the call its form;
- each answer is checked here against a reference computed in plain Python, so you see when
  the small default model gets it right and when it does not.
"""

from __future__ import annotations

from llmos.kernel.boot import Kernel
from llmos.peripherals.python import Python

QUESTIONS = {
    "What is the sum of the squares of the numbers from 1 to 20?": sum(
        n * n for n in range(1, 21)
    ),
    "What is the sum of the numbers from 1 to 100?": sum(range(1, 101)),
    "What is the sum of the cubes of the numbers from 1 to 10?": sum(n**3 for n in range(1, 11)),
}


def main() -> None:
    kernel = Kernel(peripherals=[Python()])  # boots the default model
    right = 0
    try:
        for question, expected in QUESTIONS.items():
            proc = kernel.spawn()  # a fresh process per question
            reply = kernel.run(proc, question)
            print(f"Q: {question}")
            for call in reply.calls:
                print(f"  {call.syscall} ({call.status}):")
                print("    " + str(call.args.get("code", call.args)).replace("\n", "\n    "))
                print(f"    -> {call.result}")
            ok = str(expected) in reply.text
            right += ok
            print(f"A: {reply.text}   [{'correct' if ok else f'wrong, expected {expected}'}]\n")
    finally:
        kernel.close()
    print(f"{right} of {len(QUESTIONS)} answers correct")


if __name__ == "__main__":
    main()
