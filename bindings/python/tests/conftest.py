"""Shared fixtures: the real tiny model stories260K and its expected greedy continuations.

Shared data is read from ../shared beside the checkout, or from $LLMOS_SHARED_DIR; tests that
need it are skipped, naming the path, when it is absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import llmos

REPO_ROOT = Path(__file__).resolve().parents[3]


def shared_dir() -> Path:
    env = os.environ.get("LLMOS_SHARED_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def shared_path(relative: str) -> Path:
    return shared_dir() / relative


def require_shared(relative: str) -> Path:
    path = shared_path(relative)
    if not path.is_file():
        pytest.skip(f"shared data not found: {path} (set LLMOS_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def model_path() -> Path:
    return require_shared("models/stories260K.gguf")


@pytest.fixture(scope="session")
def expected_greedy() -> List[Dict[str, Any]]:
    path = require_shared("models/stories260K.greedy.json")
    entries = json.loads(path.read_text(encoding="utf-8"))
    assert entries, f"{path} lists no continuations"
    return entries


@pytest.fixture(scope="session")
def model(model_path: Path) -> Iterator[llmos.Model]:
    m = llmos.Model(model_path, threads=2)
    yield m
    m.close()


@pytest.fixture()
def engine(model: llmos.Model) -> Iterator[llmos.Engine]:
    """A fresh engine per test, so statistics start from zero."""
    with llmos.Engine(model) as e:
        yield e


@pytest.fixture()
def own_model(model_path: Path) -> Iterator[llmos.Model]:
    """A model no other fixture's engine is open on (Model.logits needs that)."""
    m = llmos.Model(model_path, threads=2)
    yield m
    m.close()
