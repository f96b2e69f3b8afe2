"""Names one part of a config gives and another part uses: connections, metrics, cycles, ids.

The sections are read in order (connections, cycles, metrics, then objectives) and each declares
its names here; later sections check what they refer to against them. A section that is not even
readable cannot tell what it declares, so references into it are not reported (the section
itself already is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from okrsync.config.reporting import Reporter, suggest
from okrsync.config.yaml_source import KeyPath
from okrsync.sdk.connector import ConnectionConfig, Connector, MirrorSpec, QuerySpec
from okrsync.sdk.work import WorkQuery


class CrossReferences:
    """What the sections declared so far, and the checks of every reference to it."""

    def __init__(self, reporter: Reporter, connectors: Mapping[str, Connector]) -> None:
        self.reporter = reporter
        self.connectors = connectors
        self.connections: dict[str, ConnectionConfig] = {}  # the valid ones
        self.connection_types: dict[str, str] = {}
        self.fetch_deadlines: dict[str, timedelta] = {}  # the connections that set one
        self.declared_connections: set[str] = set()
        self.declared_metrics: set[str] = set()
        self.connections_readable = True
        self.metrics_readable = True
        self.declared_cycles: set[str] | None = set()  # None: the section is unreadable

    def query_model_for(self, where: KeyPath, connection: str | None) -> type[QuerySpec] | None:
        """The query model of the source a metric at ``where`` names, if it can be one."""
        kind = self._connection_kind(where, connection)
        if kind is None:
            return None
        model = self.connectors[kind].query_model
        if model is None:
            self.reporter.problem(
                (*where, "connection"),
                f"connection {connection!r} ({kind}) cannot be a metric's source: "
                f"{kind} connections only receive updates",
            )
        return model

    def mirror_model_for(
        self, where: KeyPath, connection: str | None, *, digest: bool = False
    ) -> type[MirrorSpec] | None:
        """The mirror model of the sink a mirror at ``where`` names, if it can be one."""
        kind = self._connection_kind(where, connection)
        if kind is None:
            return None
        connector = self.connectors[kind]
        model = connector.mirror_model
        if model is None:
            self.reporter.problem(
                (*where, "connection"),
                f"connection {connection!r} ({kind}) cannot be a mirror: "
                f"{kind} connections only provide metrics",
            )
        elif digest and not connector.supports_digest:
            self.reporter.problem(
                (*where, "connection"),
                f"connection {connection!r} ({kind}) cannot mirror a whole objective; "
                "put the mirror on each key result instead",
            )
            return None
        return model

    def work_model_for(self, where: KeyPath, connection: str | None) -> type[WorkQuery] | None:
        """The work model of the tracker a ``work`` entry at ``where`` names, if it can be one."""
        kind = self._connection_kind(where, connection)
        if kind is None:
            return None
        model = self.connectors[kind].work_model
        if model is None:
            self.reporter.problem(
                (*where, "connection"),
                f"connection {connection!r} (type {kind}) cannot list work",
            )
        return model

    def _connection_kind(self, where: KeyPath, connection: str | None) -> str | None:
        if connection is None:
            return None
        if connection not in self.declared_connections:
            if self.connections_readable:
                self.reporter.problem(
                    (*where, "connection"),
                    f"unknown connection {connection!r}"
                    + suggest(connection, self.declared_connections),
                )
            return None
        return self.connection_types.get(connection)  # None: the connection itself is wrong

    def check_cycle(self, at: KeyPath, cycle: str) -> None:
        declared = self.declared_cycles
        if declared is not None and cycle not in declared:
            self.reporter.problem(
                at,
                f"unknown cycle {cycle!r}{suggest(cycle, declared)}"
                + ("" if declared else "; define it under 'cycles:'"),
            )

    def known_metric(self, at: KeyPath, metric: str) -> bool:
        """Whether ``metric`` is declared; reports it when it is not (and could have been)."""
        if metric in self.declared_metrics:
            return True
        if self.metrics_readable:
            self.reporter.problem(
                at,
                f"unknown metric {metric!r}{suggest(metric, self.declared_metrics)}"
                + ("" if self.declared_metrics else "; define it under 'metrics:'"),
            )
        return False

    def unknown_metrics(self, at: KeyPath, names: Iterable[str]) -> list[str]:
        """The names an expression uses that no metric declares, each reported."""
        if not self.metrics_readable:
            return []
        unknown = sorted(set(names) - self.declared_metrics)
        for name in unknown:
            self.reporter.problem(
                at,
                f"unknown metric {name!r} in value expression"
                + suggest(name, self.declared_metrics),
            )
        return unknown

    def check_parents(
        self, parents: Mapping[str, tuple[str, KeyPath]], known: Mapping[str, int]
    ) -> None:
        """Every ``parent:`` names another objective, and following parents never loops."""
        reported: set[str] = set()
        for child, (parent, where) in parents.items():
            if parent == child:
                self.reporter.problem(where, f"objective {child!r} cannot be its own parent")
                reported.add(child)
                continue
            if parent not in known:
                self.reporter.problem(
                    where, f"unknown parent objective {parent!r}{suggest(parent, known)}"
                )
                continue
            chain = [child]
            current = parent
            while current in parents and current not in chain:
                chain.append(current)
                current = parents[current][0]
            if current == child and child not in reported:
                reported.update(chain)
                loop = " → ".join([*chain, child])
                self.reporter.problem(
                    where, f"parents form a cycle: {loop}; an objective cannot serve itself"
                )


class UniqueIds:
    """Ids of one kind (cycles, objectives, key results), each to be defined only once."""

    def __init__(self, reporter: Reporter, what: str, note: str = "") -> None:
        self.reporter = reporter
        self.what = what
        self.note = note
        self.lines: dict[str, int] = {}  # id → the line that first defined it

    def claim(self, item_id: str, at: KeyPath) -> bool:
        """Record ``item_id`` as defined at ``at``; ``False`` (reported) if it already was."""
        first = self.lines.get(item_id)
        if first is not None:
            self.reporter.problem(
                at,
                f"duplicate {self.what} id {item_id!r} (first defined on line {first}){self.note}",
            )
            return False
        self.lines[item_id] = self.reporter.line(at)
        return True
