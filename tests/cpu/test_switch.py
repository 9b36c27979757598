"""Context switches on the real default model: a resumed slot continues as if it never left."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from llmos.cpu.llama import LlamaCPU

pytestmark = pytest.mark.model

HEAD = (
    "The ship's log, day one. The crew counted 41 crates of apples, 17 barrels of water and "
    "a goat named Clementine. The captain wrote that the wind came from the north-east.\n"
)
MORE = "Day two. The goat ate three apples and the cook said"
OTHER = "A different process entirely: the recipe needs flour, eggs, sugar and a pinch of salt."


@pytest.fixture
def fresh(cpu: LlamaCPU) -> Iterator[LlamaCPU]:
    cpu.reset()
    budget = cpu.state_budget
    yield cpu
    cpu.state_budget = budget
    cpu.reset()


def _reference(cpu: LlamaCPU) -> np.ndarray:
    """Logits of a slot that reads HEAD then HEAD + MORE without ever leaving the CPU."""
    cpu.reset()
    cpu.logits(HEAD, slot="ref")
    ref = cpu.logits(HEAD + MORE, slot="ref")
    cpu.reset()
    return ref


def test_logits_after_switch_out_and_back_equal_those_of_a_process_that_stayed(
    fresh: LlamaCPU,
) -> None:
    ref = _reference(fresh)
    fresh.complete(HEAD, max_tokens=1, slot="a")
    fresh.complete(OTHER, max_tokens=1, slot="b")  # evicts "a" from the context
    assert fresh.states["a"][0] == "memory"
    back = fresh.switch("a")
    assert back.source == "memory" and back.restored_bytes > 0
    assert back.restored_tokens == fresh.count_tokens(HEAD) + 1  # BOS
    assert back.saved_bytes > 0  # "b" was copied out on the way
    got = fresh.logits(HEAD + MORE, slot="a")
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-3)
    assert int(np.argmax(got)) == int(np.argmax(ref))


def test_resumed_slot_prefills_only_its_new_suffix(fresh: LlamaCPU) -> None:
    first = fresh.complete(HEAD, max_tokens=1, slot="a")
    fresh.complete(OTHER, max_tokens=1, slot="b")
    again = fresh.complete(HEAD + MORE, max_tokens=1, slot="a")
    # everything "a" had read comes back from the saved state; only MORE (and the last token
    # of HEAD, whose logits a restore does not bring back) is evaluated
    assert again.reused_tokens >= first.prompt_tokens - 1
    assert again.prefilled_tokens <= fresh.count_tokens(MORE) + 2


def test_spilled_state_comes_back_from_its_file_unchanged(fresh: LlamaCPU) -> None:
    ref = _reference(fresh)
    fresh.state_budget = 0  # every saved state goes to a file
    fresh.complete(HEAD, max_tokens=1, slot="a")
    fresh.complete(OTHER, max_tokens=1, slot="b")
    assert fresh.states["a"][0] == "file"
    back = fresh.switch("a")
    assert back.source == "file" and back.restored_bytes > 0
    np.testing.assert_allclose(fresh.logits(HEAD + MORE, slot="a"), ref, rtol=0, atol=1e-3)


def test_a_forgotten_slot_re_prefills_and_is_still_right(fresh: LlamaCPU) -> None:
    # A re-prefill evaluates in other batch shapes than the original reads, which moves logits
    # (up to ~0.8 here): the reference is a re-prefill after the same context, not _reference.
    fresh.logits(OTHER, slot="ref")
    ref = fresh.logits(HEAD + MORE, slot="ref")
    fresh.reset()
    fresh.complete(HEAD, max_tokens=1, slot="a")
    fresh.complete(OTHER, max_tokens=1, slot="b")
    fresh.forget("a")
    assert "a" not in fresh.states
    back = fresh.switch("a")
    assert back.source == "none" and back.restored_bytes == 0
    np.testing.assert_allclose(fresh.logits(HEAD + MORE, slot="a"), ref, rtol=0, atol=1e-3)


def test_switching_to_the_owner_is_free(fresh: LlamaCPU) -> None:
    fresh.complete(HEAD, max_tokens=1, slot="a")
    same = fresh.switch("a")
    assert same.source == "same" and same.saved_bytes == same.restored_bytes == 0


def test_many_slots_take_turns_and_each_resumes_where_it_stopped(fresh: LlamaCPU) -> None:
    texts = {s: f"Process {s} keeps a diary. Entry one: it rained on {s}'s garden.\n"
             for s in ("p", "q", "r", "s")}
    firsts = {s: fresh.logits(t, slot=s) for s, t in texts.items()}
    biggest = max(size for _, size in fresh.states.values())
    buffer = -(-biggest // 2**20) * 2**20  # buffers come in whole MiB
    fresh.state_budget = buffer + buffer // 2  # one saved state fits in memory, the rest spill
    for _ in range(2):
        for s, t in texts.items():
            np.testing.assert_array_equal(fresh.logits(t, slot=s), firsts[s])
    assert {where for where, _ in fresh.states.values()} == {"memory", "file"}
