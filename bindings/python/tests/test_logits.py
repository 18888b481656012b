"""Model.logits: numpy arrays that share the library's buffer, and agreement with generation."""

from __future__ import annotations

import numpy as np
import pytest

import llmos


def test_shape_dtype_and_zero_copy(own_model: llmos.Model) -> None:
    ids = own_model.tokenize("Once upon a time")
    logits = own_model.logits(ids)
    assert logits.shape == (len(ids), own_model.vocab_size)
    assert logits.dtype == np.float32
    assert logits.flags.c_contiguous and logits.flags.writeable
    # The array wraps llmos's own 64-byte aligned buffer (kept alive by a capsule): no copy.
    assert not logits.flags.owndata and type(logits.base).__name__ == "PyCapsule"
    assert logits.ctypes.data % 64 == 0
    assert np.isfinite(logits).all()
    view = logits[1:]
    del logits
    assert np.isfinite(view).all()  # the capsule keeps the buffer alive for views


def test_argmax_matches_first_greedy_token(own_model: llmos.Model, expected_greedy) -> None:
    prompts = [e["prompt"] for e in expected_greedy]
    firsts = []
    for prompt in prompts:
        ids = own_model.tokenize(prompt)
        logits = own_model.logits(np.asarray(ids, dtype=np.int32))
        last = own_model.logits(ids, last_only=True)
        assert last.shape == (1, own_model.vocab_size)
        np.testing.assert_allclose(last[0], logits[-1], rtol=1e-5, atol=1e-5)
        firsts.append(int(np.argmax(logits[-1])))
    with llmos.Engine(own_model) as engine:
        for prompt, first in zip(prompts, firsts):
            result = engine.wait(engine.submit(prompt, max_tokens=1, temperature=0.0))
            assert result.tokens == [first], prompt


def test_longer_than_one_chunk(own_model: llmos.Model) -> None:
    ids = (own_model.tokenize("Once upon a time there was a girl. ") * 60)[:700]
    logits = own_model.logits(ids)
    assert logits.shape == (700, own_model.vocab_size)
    # A position's logits do not depend on what follows it (causal), chunked or not.
    np.testing.assert_allclose(own_model.logits(ids[:10]), logits[:10], rtol=1e-4, atol=1e-4)


def test_bad_tokens(own_model: llmos.Model) -> None:
    with pytest.raises(ValueError, match="empty"):
        own_model.logits([])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        own_model.logits([1, own_model.vocab_size])
    with pytest.raises(ValueError, match="context length"):
        own_model.logits([1] * (own_model.context_length + 1))
    with pytest.raises(TypeError, match="int32"):
        own_model.logits(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="kv_dtype"):
        own_model.logits([1, 2], kv_dtype="f8")


def test_busy_while_an_engine_shares_the_forward_pass(own_model: llmos.Model) -> None:
    ids = own_model.tokenize("The sun was")
    engine = llmos.Engine(own_model)
    with pytest.raises(llmos.BusyError, match="close"):
        own_model.logits(ids)
    # An engine with its own threads has its own model instance and does not block logits.
    with llmos.Engine(own_model, threads=1) as separate:
        assert separate.generate("The sun was", max_tokens=3, temperature=0.0)
        engine.close()
        assert own_model.logits(ids).shape == (len(ids), own_model.vocab_size)
