"""The loop guard on word tokens (no model needed): what counts as a loop, and where to cut."""

from __future__ import annotations

from collections.abc import Sequence

from llmos.cpu.loops import loop_cut

# a toy vocabulary: each token is one piece of text
PIECES: list[str] = []


def tokens(*pieces: str) -> list[int]:
    out = []
    for p in pieces:
        if p not in PIECES:
            PIECES.append(p)
        out.append(PIECES.index(p))
    return out


def text(ids: Sequence[int]) -> str:
    return "".join(PIECES[i] for i in ids)


SENTENCE = ("The", " year", " was", " 1940", ".")


def test_a_repeated_sentence_is_cut_back_to_one_copy() -> None:
    out = tokens(*SENTENCE, " The", " year", " was", " 1940", ".", " The", " year", " was",
                 " 1940", ".")
    cut = loop_cut(out, text)
    assert text(out[:-cut]) == "The year was 1940."


def test_the_start_of_a_sentence_left_before_the_repeat_is_cut_too() -> None:
    # "I am here. I" + " am here. I": the repeated unit starts mid-sentence
    out = tokens("I", " am", " here", ".", " I", " am", " here", ".", " I")
    cut = loop_cut(out, text)
    assert text(out[:-cut]) == "I am here."


def test_digits_lists_and_code_are_not_loops() -> None:
    assert loop_cut(tokens(*"1000000000"), text) == 0
    assert loop_cut(tokens("1", ",", " 2", ",", " 1", ",", " 2", ","), text) == 0
    assert loop_cut(tokens("x", " +=", " 1", "\n", "x", " +=", " 1", "\n"), text) == 0
    assert loop_cut(tokens(*SENTENCE), text) == 0  # said once
