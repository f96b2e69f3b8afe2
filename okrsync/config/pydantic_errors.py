"""Checking a value with a connector's own pydantic model, and saying what is wrong our way.

Connector specific fields (a connection's settings, a metric's query, a mirror's target) are
validated by the connector's models. Their errors are translated into problems at the key path of
the offending field, with a did-you-mean for unknown keys, and never quote a value given to a
connection (it may be a secret).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import PydanticUndefined

from okrsync.config.fields import OKRSYNC_ERROR
from okrsync.config.reporting import MISSING, Reporter, kind_of, show_value, suggest
from okrsync.config.yaml_source import KeyPath

_FRIENDLY = {
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "decimal_parsing": "expected a number",
    "decimal_type": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "list_type": "expected a list",
}


_NOT_A_MAPPING = frozenset(("dict_type", "model_type", "model_attributes_type"))
_ENTRIES = {  # what an entry of each list in a config is, for "expected …, got …"
    "cycles": "a cycle with id, start and end",
    "objectives": "an objective",
    "key_results": "a key result",
    "mirrors": "a mirror with at least its connection",
}


def validate(
    reporter: Reporter,
    path: KeyPath,
    model: type[BaseModel],
    data: dict[str, Any],
    *,
    secret: bool,
    also_allowed: Collection[str] = (),
) -> BaseModel | None:
    """``data`` validated by ``model``; ``None`` once every error is reported at ``path``.

    ``secret``: never quote a value back. ``also_allowed``: keys taken out of ``data`` before it
    was given to ``model`` (the fields every metric or mirror has), offered in did-you-means.
    """
    validated, problems = check(model, data, secret=secret, also_allowed=also_allowed)
    for loc, message in problems:
        reporter.problem((*path, *loc), message)
    return validated if isinstance(validated, BaseModel) else None


def check(
    model: Any,
    data: Any,
    *,
    secret: bool = False,
    also_allowed: Collection[str] = (),
    shape: Any = None,
    at: KeyPath = (),
) -> tuple[Any, list[tuple[KeyPath, str]]]:
    """``data`` validated by ``model`` (a model class, or a :class:`TypeAdapter` of the type
    ``shape``), and the problems found, each at its key path relative to ``data``; the value is
    ``None`` if there are any. ``at``: where ``data`` sits, to name what an entry should be."""
    try:
        return model.validate_python(data) if isinstance(model, TypeAdapter) else (
            model.model_validate(data)
        ), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=True)
        owner = _model_in(shape if shape is not None else model)
        return None, [
            (
                tuple(e["loc"]),
                _message(owner, tuple(e["loc"]), e, data, secret, also_allowed, at),
            )
            for e in errors
        ]


def valid_fields(
    model: type[BaseModel], data: Mapping[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    """For a mapping ``model`` refused: each field's validated value where that field alone is
    valid (absent ones at their defaults), and the keys that are wrong or unknown. The checks
    that look across entries (references, duplicate ids) still run on what is right."""
    values: dict[str, Any] = {}
    wrong = {str(key) for key in data if key not in model.model_fields}
    for name in model.model_fields:
        adapter = _field_adapter(model, name)
        try:
            if name in data:
                values[name] = adapter.validate_python(data[name])
            else:
                default = model.model_fields[name].get_default(call_default_factory=True)
                if default is PydanticUndefined:
                    wrong.add(name)
                else:
                    values[name] = adapter.validate_python(default)
        except ValidationError:
            wrong.add(name)
    return values, wrong


@functools.cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    annotation: Any = info.annotation
    if info.metadata:
        annotation = Annotated[annotation, *info.metadata]
    return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))


def _message(
    model: type[BaseModel] | None,
    loc: tuple[str | int, ...],
    error: Any,
    data: dict[str, Any],
    secret: bool,
    also_allowed: Collection[str],
    at: KeyPath = (),
) -> str:
    kind = str(error["type"])
    if kind == OKRSYNC_ERROR:
        context = error["ctx"]
        if "got" not in context:
            return str(context["message"])
        got = context["got"]
        return f"{context['message']}, got {kind_of(got) if secret else show_value(got)}"
    name = loc[-1] if loc else ""
    if kind in _NOT_A_MAPPING:
        owner = [part for part in (*at, *loc[:-1]) if isinstance(part, str)]
        what = _ENTRIES.get(owner[-1], "") if owner and isinstance(name, int) else ""
        value = _value_at(data, loc)
        got = kind_of(value) if secret or value is MISSING else show_value(value)
        return f"expected {what or 'a mapping'} (a mapping of keys), got {got}"
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1]) if model is not None else []
        if len(loc) == 1:
            allowed = [*allowed, *also_allowed]
        return f"unknown key {name!r}{suggest(str(name), allowed)}"
    if kind == "missing":
        return f"missing required key {name!r}"
    friendly = _FRIENDLY.get(kind)
    message = friendly or str(error["msg"])
    if friendly and not secret:
        value = _value_at(data, loc)
        if value is not MISSING:
            message += f", got {show_value(value)}"
    return message


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the (sub)model found at ``loc`` inside ``model``, as best we can."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current = _model_in(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        names = list(current.model_fields)
        names += [f.alias for f in current.model_fields.values() if f.alias]
        return names
    return []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _value_at(data: Any, loc: tuple[str | int, ...]) -> Any:
    current = data
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current = current[part]
        else:
            return MISSING
    return current
