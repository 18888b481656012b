"""Errors are Python exceptions carrying the library's message; closed objects refuse use."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmos


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model.gguf"
    with pytest.raises(FileNotFoundError) as info:
        llmos.Model(missing)
    err = info.value
    assert isinstance(err, llmos.NoSuchFileError) and isinstance(err, llmos.LlmosError)
    assert str(missing) in str(err)
    assert err.filename == str(missing) and err.code == "io"


def test_malformed_file_is_a_format_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 60)
    with pytest.raises(llmos.LlmosError) as info:
        llmos.Model(bad)
    assert isinstance(info.value, (llmos.FormatError, llmos.IoError))
    assert str(bad) in str(info.value)
    with pytest.raises(llmos.IoError):
        llmos.Model(tmp_path)  # a directory


@pytest.mark.parametrize(
    "params, match",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_p": 2.0}, "top_p"),
        ({"min_p": -0.5}, "min_p"),
        ({"repeat_penalty": 0.0}, "repeat_penalty"),
        ({"priority": "urgent"}, "urgent"),
        ({"seed": -1}, "seed"),
        ({"stop_token_ids": [-5]}, "stop_token_ids"),
        ({"stop": ["ok", ""]}, "stop_strings"),
    ],
)
def test_bad_request_parameters_raise_value_error(engine: llmos.Engine, params, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        engine.generate("Once upon a time", **params)
    assert isinstance(info.value, llmos.InvalidArgumentError)
    assert info.value.code == "invalid_argument"
    with pytest.raises(ValueError, match=match):
        engine.stream("Once upon a time", **params)  # raises at the call, before iteration
    assert engine.stats()["num_running"] == 0


def test_bad_types_raise_type_error(engine: llmos.Engine) -> None:
    with pytest.raises(TypeError, match="temprature"):
        engine.generate("Once upon a time", temprature=0.5)
    with pytest.raises(TypeError):
        engine.generate("Once upon a time", max_tokens="many")
    with pytest.raises(TypeError):
        engine.generate(42)
    with pytest.raises(TypeError):
        engine.generate(["ok", 42])
    with pytest.raises(TypeError):
        engine.generate("x", stop=[1, 2])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"kv_dtype": "f8"}, "kv_dtype"),
        ({"block_size": 0}, "block_size"),
        ({"max_sequences": 0}, "max_sequences"),
        ({"max_batched_tokens": 0}, "max_batched_tokens"),
        ({"preemption": "drop"}, "preemption"),
        ({"max_model_len": 10**7}, "max_model_len"),
        ({"quotas": {"a": {"max_running": -1}}}, "max_running"),
        ({"quotas": {"a": {"max_runing": 1}}}, "max_runing"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_engine_parameters_raise_value_error(model: llmos.Model, params, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        llmos.Engine(model, **params)


def test_bad_model_parameters(model_path: Path) -> None:
    with pytest.raises(ValueError, match="threads"):
        llmos.Model(model_path, threads=0)
    with pytest.raises(ValueError):
        llmos.Model(model_path, device="tpu")


def test_unknown_client_rejected(model: llmos.Model) -> None:
    with llmos.Engine(model, quotas={"known": {}}, reject_unknown_clients=True) as engine:
        assert engine.generate("x", max_tokens=2, client_id="known")
        with pytest.raises(ValueError, match="stranger"):
            engine.generate("x", max_tokens=2, client_id="stranger")


def test_closed_and_none_objects(model_path: Path) -> None:
    model = llmos.Model(model_path)
    engine = llmos.Engine(model)
    model.close()
    assert model.closed
    with pytest.raises(llmos.ClosedError, match="closed"):
        model.tokenize("x")
    with pytest.raises(ValueError):
        _ = model.vocab_size
    with pytest.raises(llmos.ClosedError):
        llmos.Engine(model)
    # The engine holds its own reference to the weights and keeps working.
    assert engine.generate("The sun was", max_tokens=3, temperature=0.0)
    engine.close()
    engine.close()  # idempotent
    assert engine.closed
    for call in (
        lambda: engine.generate("x"),
        lambda: engine.submit("x"),
        lambda: engine.stats(),
        lambda: engine.stream("x"),
        lambda: engine.tokenize("x"),
        lambda: engine.cancel(1),
    ):
        with pytest.raises(llmos.ClosedError):
            call()
    with pytest.raises(TypeError):
        llmos.Engine(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        llmos.Model(None)  # type: ignore[arg-type]


def test_unknown_request_ids(engine: llmos.Engine) -> None:
    with pytest.raises(llmos.NotFoundError) as info:
        engine.wait(123456)
    assert isinstance(info.value, LookupError) and "123456" in str(info.value)
    with pytest.raises(llmos.NotFoundError):
        engine.next_event(123456, timeout=0)
