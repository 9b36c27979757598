"""RAM invariants under the pager, as properties over random workloads (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmos.errors import ContextOverflow
from llmos.memory.page import Page
from llmos.memory.pager import Pager, PageStats
from llmos.memory.ram import RAM
from llmos.params import Params
from llmos.testing import ScriptedCPU
from llmos.trace import Event

_count = ScriptedCPU([]).count_tokens


_op = st.one_of(
    st.tuples(st.just("message"), st.integers(1, 60), st.booleans()),
    st.tuples(st.just("call"), st.integers(1, 40), st.booleans()),
)


@settings(max_examples=150, deadline=None)
@given(budget=st.integers(200, 600), ops=st.lists(_op, min_size=1, max_size=40))
def test_budget_groups_and_pins_hold(budget: int, ops: list[tuple[str, int, bool]]) -> None:
    ram = RAM(_count, budget, header="header text " * 5)
    pager = Pager(None, params=Params(summary_tokens=0))
    stats = PageStats()
    pinned: set[str] = set()
    events: list[Event] = []
    for n, (kind, words, pin) in enumerate(ops):
        text = " ".join(f"w{i}" for i in range(words))
        if kind == "message":
            page = ram.append(Page(kind="message", text=text, pinned=pin))
            if pin:
                pinned.add(page.id)
        else:
            ram.append(Page(kind="call", role="model", text=text, group=f"g{n}"))
            ram.append(Page(kind="result", role="device", text=text, group=f"g{n}"))
        try:
            pager.relieve(ram, stats, events)
        except ContextOverflow as exc:
            # only when what cannot move (header, pinned pages) already exceeds the budget,
            # or what is left after evicting everything does
            assert "RAM holds" in str(exc) or "pinned" in str(exc)
            return
        assert ram.tokens <= budget
        resident = {p.id for p in ram}
        assert pinned <= resident
        groups: dict[str, int] = {}
        for p in ram:
            if p.group:
                groups[p.group] = groups.get(p.group, 0) + 1
        assert all(n == 2 for n in groups.values()), "a call was separated from its result"


def test_pinned_pages_over_budget_say_so() -> None:
    ram = RAM(_count, 50)
    ram.append(Page(text="x " * 80, pinned=True))
    with pytest.raises(ContextOverflow, match="pinned"):
        ram.check()


def test_rendered_tokens_match_the_accounting() -> None:
    ram = RAM(_count, 10_000, header="Tools: a, b\n")
    for i in range(5):
        ram.append(Page(text=f"message {i}"))
        ram.append(Page(kind="result", role="device", text="data", source="https://e.org",
                        trust="untrusted"))
    assert _count(ram.render()) == ram.tokens
    assert "untrusted text from https://e.org" in ram.render()
