"""Example configs shipped with the package: the starter for ``init`` and the demo's."""

from __future__ import annotations

from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path

SCHEMA_MODELINE = "# yaml-language-server: $schema={schema}\n"


def example(name: str) -> str:
    return (files(__package__) / f"{name}.yaml").read_text()


def quarter(today: date) -> tuple[str, date, date]:
    """The calendar quarter ``today`` falls in: its id (``2027-Q1``), first and last day. Pure."""
    number = (today.month - 1) // 3 + 1
    start = date(today.year, 3 * number - 2, 1)
    following = date(today.year + 1, 1, 1) if number == 4 else date(today.year, 3 * number + 1, 1)
    return f"{today.year}-Q{number}", start, following - timedelta(days=1)


def starter_config(today: date | None = None, schema: str | None = None) -> str:
    """The starter config with the quarter of ``today`` as its cycle (the starter's template has
    no dates of its own), and an editor's schema line first when ``schema`` is given."""
    cycle_id, start, end = quarter(today or date.today())
    text = (
        example("starter")
        .replace("__CYCLE_ID__", cycle_id)
        .replace("__CYCLE_START__", start.isoformat())
        .replace("__CYCLE_END__", end.isoformat())
    )
    return (SCHEMA_MODELINE.format(schema=schema) if schema else "") + text


SCHEMA_FILE = "okrsync.schema.json"


def write_starter(path: Path, today: date | None = None, *, force: bool = False) -> Path | None:
    """Write the starter config at ``path`` and, beside it, the JSON Schema its first line names
    (for the installed connectors; kept when it exists unless ``force``). Returns the schema's
    path when it was written."""
    from okrsync.config import write_schema
    from okrsync.plugins import load_registry

    path.write_text(starter_config(today, schema=SCHEMA_FILE))
    schema = path.parent / SCHEMA_FILE
    if schema.exists() and not force:
        return None
    write_schema(load_registry().connectors, schema)
    return schema
