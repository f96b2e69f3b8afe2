"""Reading a YAML value as the shape a section needs: a mapping, a list, a connection's name.

The fields of each entry are read by the document models (:mod:`.models`, :mod:`.fields`); what
is left here is what a section checks before its entries can be given to a model (is it a
mapping, a list?), and a connection's name, checked before its settings, whose values may come
from ``${…}`` references and are therefore never quoted back (:meth:`Reporter.show`).
"""

from __future__ import annotations

import re
from typing import Any

from okrsync.config.fields import ID_PATTERN
from okrsync.config.reporting import Reporter, kind_of
from okrsync.config.yaml_source import KeyPath

_ID = re.compile(ID_PATTERN)


class ValueReader(Reporter):
    """A :class:`Reporter` that reads values, reporting each one that is not what it should be."""

    def mapping(self, path: KeyPath, value: object, what: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.problem(path, f"expected {what} (a mapping of keys), got {kind_of(value)}")
        return None

    def sequence(self, path: KeyPath, value: object, what: str) -> list[Any] | None:
        if isinstance(value, list):
            return value
        self.problem(
            path,
            f"expected {what} (a list of items, each starting with '- '), got {kind_of(value)}",
        )
        return None

    def identifier(self, path: KeyPath, value: object, what: str) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.problem(path, f"expected {what} (a string), got {self.show(path, value)}")
            return None
        if not _ID.fullmatch(value):
            self.problem(
                path,
                f"{what} {value!r} is not valid: use letters, digits and _ . : - "
                "(starting with a letter or digit)",
            )
            return None
        return value
