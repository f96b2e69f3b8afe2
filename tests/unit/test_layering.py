"""The package layering holds: the pure domain imports none of the layers built on it, and config
and store do not import the engine.

Imports are read from the source with :mod:`ast`, so a lazy import inside a function counts too;
only imports under ``if TYPE_CHECKING:`` (types for the checker, never run) are exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import okrsync

PACKAGE_ROOT = Path(okrsync.__file__).parent


def _is_type_checking_guard(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(source: str) -> list[tuple[int, str]]:
    """Every module a source imports when it runs, with its line, outside ``if TYPE_CHECKING:``."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking_guard(node):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def _names(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def forbidden_imports(package: str, forbidden: tuple[str, ...]) -> list[str]:
    offences: list[str] = []
    for path in sorted((PACKAGE_ROOT / package).rglob("*.py")):
        for line, module in runtime_imports(path.read_text(encoding="utf-8")):
            if any(_names(module, layer) for layer in forbidden):
                offences.append(f"{path.relative_to(PACKAGE_ROOT.parent)}:{line} imports {module}")
    return offences


UPPER_LAYERS = ("okrsync.config", "okrsync.store", "okrsync.engine", "okrsync.api", "okrsync.cli")


def test_domain_imports_no_layer_built_on_it() -> None:
    assert list((PACKAGE_ROOT / "domain").glob("*.py")), "okrsync/domain is missing"
    assert forbidden_imports("domain", UPPER_LAYERS) == []


@pytest.mark.parametrize("package", ["config", "store"])
def test_config_and_store_do_not_import_the_engine(package: str) -> None:
    assert forbidden_imports(package, ("okrsync.engine",)) == []


def test_the_walker_sees_lazy_imports_and_exempts_type_checking_only() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from okrsync.config import Config\n"
        "else:\n"
        "    import okrsync.store\n"
        "def f() -> None:\n"
        "    from okrsync import engine\n"
    )
    modules = [module for _, module in runtime_imports(source)]
    assert "okrsync.config" not in modules
    assert "okrsync.store" in modules
    assert "okrsync.engine" in modules
