"""Context snapshots: a conversation switched out of the engine to a file and resumed later,
in the same engine or another one, continues exactly as an uninterrupted run would."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmos

GREEDY = dict(temperature=0.0, ignore_eos=True)


def test_resumed_context_continues_like_an_uninterrupted_run(model: llmos.Model, tmp_path: Path) -> None:
    with llmos.Engine(model) as engine:
        whole = engine.wait(engine.submit("Once upon a time", max_tokens=40, **GREEDY))
        first = engine.wait(engine.submit("Once upon a time", max_tokens=15, keep_context=True, **GREEDY))
        assert first.tokens == whole.tokens[:15]
        path = tmp_path / "story.llmosctx"
        engine.save_snapshot(first.id, path)  # os.PathLike accepted
        assert path.stat().st_size > 0
        with pytest.raises(llmos.NotFoundError):
            engine.save_snapshot(first.id, str(path))  # released by the first save
    # Another engine on the same model: the rest of the story, computing only new tokens.
    with llmos.Engine(model) as engine:
        rest = engine.wait(engine.submit("", resume_from=str(path), max_tokens=25, **GREEDY))
        assert first.tokens + rest.tokens == whole.tokens
        assert engine.stats()["kv"]["used_blocks"] == 0


def test_resuming_with_more_text_appends_it_to_the_history(model: llmos.Model, tmp_path: Path) -> None:
    with llmos.Engine(model) as engine:
        first = engine.wait(engine.submit("The cat sat", max_tokens=6, keep_context=True, **GREEDY))
        engine.save_snapshot(first.id, tmp_path / "cat.llmosctx")
        resumed = engine.wait(
            engine.submit(" and then", resume_from=tmp_path / "cat.llmosctx", max_tokens=8, **GREEDY))
        # The same as a fresh request whose prompt is the whole history plus the new text.
        history = engine.tokenize("The cat sat") + first.tokens + engine.tokenize(" and then", add_bos=False)
        fresh = engine.wait(engine.submit(history, max_tokens=8, **GREEDY))
        assert resumed.tokens == fresh.tokens


def test_snapshot_errors_name_the_problem(engine: llmos.Engine, tmp_path: Path) -> None:
    plain = engine.wait(engine.submit("The sun was", max_tokens=3, **GREEDY))
    with pytest.raises(llmos.NotFoundError, match=str(plain.id)):
        engine.save_snapshot(plain.id, tmp_path / "none.llmosctx")  # not kept
    kept = engine.wait(engine.submit("The sun was", max_tokens=3, keep_context=True, **GREEDY))
    with pytest.raises(llmos.IoError):
        engine.save_snapshot(kept.id, tmp_path / "no-such-dir" / "x.llmosctx")
    engine.save_snapshot(kept.id, tmp_path / "kept.llmosctx")  # kept after the failed write
    with pytest.raises(FileNotFoundError):
        engine.submit("", resume_from=tmp_path / "missing.llmosctx", max_tokens=3)
    damaged = tmp_path / "damaged.llmosctx"
    damaged.write_bytes((tmp_path / "kept.llmosctx").read_bytes()[:-9])
    with pytest.raises(llmos.FormatError):
        engine.submit("", resume_from=damaged, max_tokens=3)
    with pytest.raises(TypeError):
        engine.submit("", resume_from=42, max_tokens=3)
    with pytest.raises(TypeError):
        engine.generate("The sun was", keep_context=True)  # generate() does not keep contexts
    assert engine.stats()["kv"]["used_blocks"] == 0
