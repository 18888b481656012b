"""The type stubs describe the module that is actually built (names and members)."""

from __future__ import annotations

import ast
from pathlib import Path

import llmos
from llmos import _llmos

STUB = Path(llmos.__file__).with_name("_llmos.pyi")
STUB_ONLY = {"TokenIds", "ClientQuota", "KvStats", "EngineStats", "_M", "_E"}  # typing helpers


def stub_classes() -> dict:
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    classes = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes[node.name] = {
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AnnAssign)) and hasattr(n, "name")
            }
    return classes


def test_stub_is_shipped_with_the_package() -> None:
    assert STUB.is_file()
    assert Path(llmos.__file__).with_name("py.typed").is_file()


def test_every_public_runtime_name_is_in_the_stub() -> None:
    classes = stub_classes()
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    top = set(classes) | {
        n.name for n in tree.body if isinstance(n, ast.FunctionDef)
    } | {
        t.target.id for t in tree.body if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)
    }
    runtime = {n for n in dir(_llmos) if not n.startswith("__")} | {"__version__"}
    assert runtime - top == set(), "names missing from _llmos.pyi"
    assert top - runtime - STUB_ONLY == set(), "stub names the module does not have"


def test_class_members_match() -> None:
    for name, members in stub_classes().items():
        if name in STUB_ONLY or issubclass(getattr(_llmos, name), BaseException):
            continue
        cls = getattr(_llmos, name)
        runtime = {m for m in vars(cls) if not m.startswith("_")}
        stub = {m for m in members if not m.startswith("_")}
        assert runtime == stub, name


def test_package_exports() -> None:
    for name in llmos.__all__:
        assert hasattr(llmos, name), name
    assert issubclass(llmos.Engine, _llmos.Engine)
    assert llmos.__version__.count(".") == 2
