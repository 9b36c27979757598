"""The egress filter (issue class 5): a parsed filter, tested with a corpus of exfiltration
forms (``exfiltration.json`` beside this file): every form that could make a client fetch a
URL off the allowlist is dropped; plain answers and allowed links pass unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from llmos.kernel.egress import filter_answer, hosts_in
from llmos.kernel.policy import Policy
from llmos.memory.page import Page

CORPUS: dict[str, Any] = json.loads(
    (Path(__file__).with_name("exfiltration.json")).read_text(encoding="utf-8")
)
SECRET: str = CORPUS["secret"]
ALLOWED = frozenset(CORPUS["allowed_hosts"])
CASES = CORPUS["cases"]

# an independent reader of the result: what a permissive client would render
_CLIENT = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(
    ["linkify", "table", "strikethrough"]
)
_TAG_WITH_HOST = re.compile(r"<[^>]*attacker[^>]*>", re.IGNORECASE)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_exfiltration_forms(case: dict[str, Any]) -> None:
    out, removed = filter_answer(case["answer"], ALLOWED)
    if not case["attack"]:
        assert (out, removed) == (case["answer"], False)
        return
    assert removed
    assert SECRET not in out, out
    assert "attacker" not in out.lower(), out
    assert not _TAG_WITH_HOST.search(_CLIENT.render(out)), _CLIENT.render(out)
    # the filter's output is a fixed point: filtering it again removes nothing
    assert filter_answer(out, ALLOWED) == (out, False)


def test_the_corpus_is_large_and_mixed() -> None:
    assert sum(c["attack"] for c in CASES) >= 40
    assert sum(not c["attack"] for c in CASES) >= 5


def test_hosts_are_read_the_way_a_browser_reads_them() -> None:
    assert hosts_in("go to HTTPS://Example.ORG/x and www.Docs.example.com") == {
        "example.org", "www.docs.example.com"
    }
    assert hosts_in("https://attacker.com\\@example.org/") == {"attacker.com"}


def test_the_policy_allows_hosts_the_user_named_and_its_own_list() -> None:
    pages = [Page(text="Summarise https://News.example.org/today")]
    text = "From [news](https://news.example.org/today) and [b](https://blog.example.net/)"
    out, removed = Policy().egress(text, pages)
    assert removed and "news.example.org/today" in out and "blog.example.net" not in out
    out, removed = Policy(allow_hosts=frozenset({"blog.example.net"})).egress(text, pages)
    assert (out, removed) == (text, False)
