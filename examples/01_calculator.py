"""A local agent answers arithmetic questions through the calculator.

Shows: booting the default kernel (embedded model, offline), spawning a process, running it,
and reading the typed trace: each decoded instruction, the call and its result, the answer.

Run:
    python examples/01_calculator.py
"""

from __future__ import annotations

from llmos import Kernel
from llmos.kernel import Called, Decoded


def main() -> None:
    kernel = Kernel()  # the embedded default model and the calculator
    for question in ["What is 123456789 * 987654321?", "What is 2 to the power of 64?"]:
        proc = kernel.spawn()  # one process per independent question
        reply = kernel.run(proc, question)
        print(f"Q: {question}")
        for event in reply.trace:
            if isinstance(event, Called):
                print(f"   called {event.syscall}({event.args}) -> {event.result}")
            elif isinstance(event, Decoded):
                print(
                    f"   decoded {event.decoded_tokens} tokens, fast-forwarded "
                    f"{event.forced_tokens}, reused {event.reused_tokens} of "
                    f"{event.prompt_tokens} prompt tokens"
                )
        print(f"A: {reply.text}")
        print(f"   process stats: {proc.stats.as_dict()}\n")


if __name__ == "__main__":
    main()
