"""The offline embedder: unit vectors, meaningful similarity, chromadb registration."""

from __future__ import annotations

import numpy as np
import pytest
from chromadb.utils.embedding_functions import known_embedding_functions

from llmos.errors import DiskError
from llmos.memory.embed import MiniLMEmbedder


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_vectors_are_unit_length_and_384_wide(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed(["hello world", "a much longer sentence " * 40, ""])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_similar_sentences_are_closer_than_unrelated_ones(embedder: MiniLMEmbedder) -> None:
    cat, kitten, tax = embedder.embed([
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "Quarterly tax returns are due in April.",
    ])
    assert float(cat @ kitten) > 0.5
    assert float(cat @ kitten) > float(cat @ tax) + 0.3


def test_order_is_kept_across_length_sorted_batches(embedder: MiniLMEmbedder) -> None:
    texts = [("word " * n).strip() for n in (30, 1, 12, 4, 50)]
    small = MiniLMEmbedder(batch_size=2).embed(texts)
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    assert np.allclose(small, alone, atol=1e-4)


def test_long_text_is_truncated_not_rejected(embedder: MiniLMEmbedder) -> None:
    long = "memory " * 2000
    assert np.allclose(embedder.embed([long]), embedder.embed(["memory " * 600]), atol=1e-4)


def test_chromadb_can_rebuild_it_from_its_config(embedder: MiniLMEmbedder) -> None:
    assert known_embedding_functions[MiniLMEmbedder.name()] is MiniLMEmbedder
    rebuilt = MiniLMEmbedder.build_from_config(MiniLMEmbedder(threads=2).get_config())
    assert rebuilt.threads == 2
    # chromadb's call path (validation wrapper included) returns one vector per document.
    assert len(embedder(["one", "two"])) == 2


def test_bad_settings_are_refused() -> None:
    with pytest.raises(DiskError, match="threads"):
        MiniLMEmbedder(threads=8)
