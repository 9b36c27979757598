"""The disk's keyword index and rank fusion, directly (no store, no embedder)."""

from __future__ import annotations

from typing import Any

import numpy as np

from llmos.memory.lexicon import Lexicon, fuse_keywords, rrf, terms


def _meta(pid: int, created: float, kind: str = "message") -> dict[str, Any]:
    return {"pid": pid, "created": created, "kind": kind}


def _lexicon(rows: list[tuple[str, str, dict[str, Any]]], cache_pages: int = 100) -> Lexicon:
    lex = Lexicon(cache_pages)
    for i, (page_id, text, meta) in enumerate(rows):
        lex.add(page_id, text, meta, np.eye(4, dtype=np.float32)[i % 4])
    return lex


def test_terms_drop_stop_words_and_strip_light_suffixes() -> None:
    assert terms("The dogs were barking loudly at the Postman") == [
        "dog", "bark", "loud", "postman"
    ]
    assert terms("is it a") == []
    assert terms("bus") == ["bus"]  # too short to lose its s


def test_bm25_ranks_the_page_with_the_rare_term_first() -> None:
    lex = _lexicon([
        ("a", "the weather was mild today", _meta(1, 1)),
        ("b", "Biscuit the dog is afraid of thunder", _meta(1, 2)),
        ("c", "the weather was mild and the dog slept", _meta(1, 3)),
    ])
    scores = lex.scores("is the dog afraid of thunder")
    assert max(scores, key=scores.__getitem__) == lex.where["b"]
    assert lex.where["a"] not in scores  # shares no term
    assert lex.scores("zebra") == {}


def test_neighbours_are_the_same_process_pages_written_just_before_and_after() -> None:
    lex = _lexicon([
        ("a1", "one", _meta(1, 1)),
        ("b1", "two", _meta(2, 2)),
        ("a2", "three", _meta(1, 3)),
        ("a3", "four", _meta(1, 4)),
    ])
    names = [lex.ids[d] for d in lex.neighbours(lex.where["a2"])]
    assert sorted(names) == ["a1", "a3"]
    assert lex.neighbours(lex.where["b1"]) == []


def test_nearest_is_exact_cosine_and_honours_a_filter() -> None:
    lex = _lexicon([(f"p{i}", f"text {i}", _meta(1, i)) for i in range(4)])
    got = lex.nearest(np.array([0, 1, 0, 0], dtype=np.float32), 2, None)
    assert lex.ids[got[0][0]] == "p1" and abs(got[0][1] - 1.0) < 1e-6
    keep = np.array([True, False, True, True])
    assert lex.ids[lex.nearest(np.array([0, 1, 0, 0]), 1, keep)[0][0]] != "p1"


def test_too_many_vectors_leave_dense_search_to_the_store() -> None:
    lex = _lexicon([(f"p{i}", "x", _meta(1, i)) for i in range(3)], cache_pages=2)
    assert lex.rows is None


def test_rrf_and_keyword_fusion_with_neighbour_spreading() -> None:
    lex = _lexicon([
        ("q", "what is the wifi password at the cabin", _meta(1, 1)),
        ("a", "maple syrup forty two", _meta(1, 2)),
        ("x", "the weather was mild", _meta(1, 3, kind="note")),
    ])
    assert rrf(["x", "q"], rrf_k=10) == {"x": 1 / 11, "q": 1 / 12}
    fused: dict[str, float] = {}
    fuse_keywords(lex, "wifi password cabin", {}, 5, fused, rrf_k=10, neighbour_weight=0.5)
    # the question matched by keywords; its answer, written just after, gets half its score;
    # a page two writes away gets nothing (spreading is one step, from the fused pages)
    assert fused == {"q": 1 / 11, "a": 0.5 / 11}
    only_notes: dict[str, float] = {}
    fuse_keywords(lex, "wifi password cabin", {"kind": "note"}, 5, only_notes, rrf_k=10,
                  neighbour_weight=0.5)
    assert "q" not in only_notes and "a" not in only_notes
