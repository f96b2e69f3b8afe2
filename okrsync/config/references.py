"""``${VAR}`` references: secrets and per-environment values stay out of the YAML kept in git.

Every string value may contain ``${NAME}`` or ``${NAME:-default}`` (the default may be empty),
embedded in longer text or not; ``$${`` writes a literal ``${``. A name is looked up in the
environment, then as a file in the secrets directory (Docker and Kubernetes mount secrets there),
then falls back to the default. Values that came from a reference inside ``connections`` are
remembered as secrets, so that errors and logs can redact them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from okrsync.config.yaml_source import KeyPath

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_HOW_TO = "write ${NAME} or ${NAME:-default}, or $${ for a literal '${'"
SECRET_SECTION = "connections"  # noqa: S105 (a section name, not a password)


@dataclass
class Resolution:
    """The data with every reference replaced, and what the resolution found on the way."""

    data: Any
    secrets: list[str] = field(default_factory=list)
    referenced: set[KeyPath] = field(default_factory=set)  # paths whose value used a reference
    problems: list[tuple[KeyPath, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ReferenceResolver:
    """Looks names up: environment first, then ``secrets_dir/NAME``."""

    environ: Mapping[str, str]
    secrets_dir: Path

    def lookup(self, name: str) -> str | None:
        if name in self.environ:
            return self.environ[name]
        candidate = self.secrets_dir / name
        try:
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError):
            return None
        return None

    def resolve(self, data: Any) -> Resolution:
        result = Resolution(data=None)
        result.data = self._walk(data, (), result)
        return result

    def _walk(self, value: Any, path: KeyPath, result: Resolution) -> Any:
        """``value`` with its references replaced; a mapping or list in which nothing changes
        is returned as it is (a config is mostly free of references: copying it all would cost
        more than the rest of the resolution)."""
        if isinstance(value, str):
            return self._substitute(value, path, result) if "$" in value else value
        if isinstance(value, dict):
            changed: dict[Any, Any] | None = None
            for key, item in value.items():
                if isinstance(item, str) and "$" not in item:
                    continue
                if not isinstance(item, str | dict | list):
                    continue
                new = self._walk(item, (*path, key), result)
                if new is not item:
                    if changed is None:
                        changed = dict(value)
                    changed[key] = new
            return value if changed is None else changed
        if isinstance(value, list):
            copied: list[Any] | None = None
            for index, item in enumerate(value):
                if isinstance(item, str) and "$" not in item:
                    continue
                if not isinstance(item, str | dict | list):
                    continue
                new = self._walk(item, (*path, index), result)
                if new is not item:
                    if copied is None:
                        copied = list(value)
                    copied[index] = new
            return value if copied is None else copied
        return value

    def _substitute(self, text: str, path: KeyPath, result: Resolution) -> str:
        secret = bool(path) and path[0] == SECRET_SECTION
        pieces: list[str] = []
        position = 0
        for match in _REFERENCE.finditer(text):
            pieces.append(text[position : match.start()])
            position = match.end()
            if match.group(0) == "$${":
                pieces.append("${")
                continue
            result.referenced.add(path)
            body = match.group(1)
            if body is None:
                result.problems.append((path, f"a reference is not closed: {_HOW_TO}"))
                continue
            name, has_default, default = body.partition(":-")
            if not _NAME.fullmatch(name):
                result.problems.append(
                    (
                        path,
                        f"'${{{name}}}' is not a valid reference: a name is letters, digits "
                        f"and underscores ({_HOW_TO})",
                    )
                )
                continue
            found = self.lookup(name)
            if found is not None:
                if secret and found:
                    result.secrets.append(found)
                pieces.append(found)
            elif has_default:
                pieces.append(default)
            else:
                result.problems.append(
                    (
                        path,
                        f"environment variable {name} is not set (nor is "
                        f"{self.secrets_dir / name}); set it or give a default with "
                        f"${{{name}:-…}}",
                    )
                )
        pieces.append(text[position:])
        return "".join(pieces)
