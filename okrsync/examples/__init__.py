"""Example configs shipped with the package: the starter for ``init`` and the demo's."""

from __future__ import annotations

from importlib.resources import files


def example(name: str) -> str:
    return (files(__package__) / f"{name}.yaml").read_text()


def starter_config() -> str:
    return example("starter")
