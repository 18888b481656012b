"""Tokenizer round trips and the token-array conventions (int32 only, never converted)."""

from __future__ import annotations

import array

import numpy as np
import pytest

import llmos

TEXTS = [
    "Once upon a time",
    "Tom and Lily went to the park.\nThey played!",
    "  two leading spaces, tabs\tand unicode: café, naïve, 東京",
    "",
]


def test_round_trip(model: llmos.Model) -> None:
    for text in TEXTS:
        ids = model.tokenize(text)
        assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
        assert all(0 <= i < model.vocab_size for i in ids)
        assert model.detokenize(ids) == text
        assert model.detokenize(model.tokenize(text, add_bos=False)) == text


def test_bos_follows_the_vocabulary(model: llmos.Model) -> None:
    assert model.add_bos and model.bos is not None
    with_bos = model.tokenize("Once upon a time")
    without = model.tokenize("Once upon a time", add_bos=False)
    assert with_bos == [model.bos] + without
    assert model.tokenize("") == [model.bos]
    assert model.tokenize(b"Once upon a time") == with_bos
    assert model.is_eog(model.eos) and not model.is_eog(with_bos[1])


def test_token_arrays(model: llmos.Model) -> None:
    ids = model.tokenize("Once upon a time")
    text = model.detokenize(ids)
    assert model.detokenize(np.asarray(ids, dtype=np.int32)) == text
    assert model.detokenize(array.array("i", ids)) == text
    assert model.detokenize(tuple(ids)) == text
    with pytest.raises(TypeError, match="int32"):
        model.detokenize(np.asarray(ids, dtype=np.int64))
    with pytest.raises(ValueError, match="contiguous"):
        model.detokenize(np.asarray(ids + ids, dtype=np.int32)[::2])
    with pytest.raises(ValueError, match="1-D"):
        model.detokenize(np.asarray([ids], dtype=np.int32))
    with pytest.raises(TypeError):
        model.detokenize("Once")  # text is not token ids
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.detokenize([model.vocab_size])
    with pytest.raises(ValueError, match="not a token id"):
        model.detokenize([2**40])


def test_engine_passthrough_matches_model(engine: llmos.Engine, model: llmos.Model) -> None:
    for text in TEXTS:
        assert engine.tokenize(text) == model.tokenize(text)
        assert engine.detokenize(model.tokenize(text)) == text


def test_model_properties(model: llmos.Model, model_path) -> None:
    assert model.path == str(model_path)
    assert model.architecture == "llama"
    assert model.vocab_size == 512 and model.context_length > 0
    assert model.num_layers > 0 and model.embedding_length > 0
    assert model.threads == 2
    assert "llmos.Model" in repr(model)
