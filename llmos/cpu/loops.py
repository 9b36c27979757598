"""Loop guard: where a decoding repeats itself, and how much of it to cut.

A small model can repeat a sentence until its token budget runs out ("The year was 1940. The
year was 1940. ..."). The decoder asks after every token whether the output now ends in a
repeat; if it does, it cuts the repeat (and the start of a sentence left before it) and ends
the string there, or stops free text.

A loop is the last ``n`` tokens (4 to 48) equal to the ``n`` before them, where the phrase is
words: it has a space and at least four letters. The digits of "1000000", a list like
"1, 2, 1, 2" and a code line like ``x += 1`` never count.

Neighbours: ``llmos.cpu.llama.LlamaCPU`` calls :func:`loop_cut` while it samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["LOOP_MAX", "LOOP_MIN", "loop_cut"]

LOOP_MIN, LOOP_MAX = 4, 48  # tokens in a phrase that counts as a loop when repeated


def loop_cut(out: Sequence[int], text: Callable[[Sequence[int]], str]) -> int:
    """How many tokens to cut from the end of ``out`` because it repeats itself (0 if none).

    ``text`` turns tokens into text. The cut is the repeat, plus the start of a sentence left
    before it if there is one: "I am here. I| am here. I" keeps "I am here.".
    """
    for n in range(LOOP_MIN, min(LOOP_MAX, len(out) // 2) + 1):
        if list(out[-n:]) != list(out[-2 * n : -n]):
            continue
        phrase = text(out[-n:])
        if " " not in phrase.strip() or sum(c.isalpha() for c in phrase) < 4:
            continue
        cut = n
        for extra in range(n):
            if text(out[: -(n + extra)]).rstrip().endswith((".", "!", "?")):
                cut = n + extra
                break
        return _whole_copies(out, cut, phrase.strip(), text)
    return 0


def _whole_copies(
    out: Sequence[int], cut: int, phrase: str, text: Callable[[Sequence[int]], str]
) -> int:
    """Grow ``cut`` while what is kept still ends in the phrase twice.

    The first copy of a sentence often differs from the rest by one token ("The" against
    " The"), so the repeat is only seen at the third copy; this leaves one copy, not two.
    """
    while True:
        kept = text(out[:-cut]).rstrip()
        head = kept[: len(kept) - len(phrase)].rstrip()
        if not (phrase and kept.endswith(phrase) and head.endswith(phrase)):
            return cut
        while cut < len(out) and len(text(out[:-cut]).rstrip()) > len(head):
            cut += 1
