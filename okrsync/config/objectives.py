"""The objectives section: objectives, their key results, and where each result is mirrored.

Objective ids are unique, key result ids are unique across all objectives, parents form no loop,
and every cycle, metric and connection named here is declared by its own section.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from okrsync.config.crossrefs import CrossReferences, UniqueIds
from okrsync.config.models import (
    DIGEST_PREFIX,
    KeyResultDef,
    KeyResultDocument,
    MirrorCommon,
    MirrorDef,
    ObjectiveDef,
    ObjectiveDocument,
    QuietHoursDocument,
    field_names,
)
from okrsync.config.pydantic_errors import validate
from okrsync.config.readers import ValueReader
from okrsync.config.reporting import MISSING, show_value, suggest
from okrsync.config.yaml_source import KeyPath
from okrsync.engine.expressions import Expression
from okrsync.engine.pacing import DeliveryPolicy, QuietHours
from okrsync.engine.progress import KRKind, TargetSpec
from okrsync.errors import ExpressionError
from okrsync.sdk.connector import MirrorSpec

_BOUNDS = ("start", "target", "low", "high")


class ObjectivesReader:
    """Reads the objectives section against what the other sections declared."""

    def __init__(
        self, read: ValueReader, refs: CrossReferences, default_stale: timedelta | None
    ) -> None:
        self.read = read
        self.refs = refs
        self.default_stale = default_stale
        self.objective_ids = UniqueIds(read, "objective")
        self.kr_ids = UniqueIds(
            read, "key result", "; key result ids must be unique across all objectives"
        )

    def section(self, value: object) -> tuple[ObjectiveDef, ...] | None:
        read = self.read
        path: KeyPath = ("objectives",)
        if value is None:
            return ()
        items = read.sequence(path, value, "objectives")
        if items is None:
            return None
        objectives: list[ObjectiveDef] = []
        parents: dict[str, tuple[str, KeyPath]] = {}
        for index, item in enumerate(items):
            where = (*path, index)
            mapping = read.mapping(where, item, "an objective")
            if mapping is None:
                continue
            read.known_keys(where, mapping, field_names(ObjectiveDocument))
            objective_id = read.identifier(
                (*where, "id"), read.required(where, mapping, "id"), "objective id"
            )
            title = read.text(
                (*where, "title"), read.required(where, mapping, "title"), required=True
            )
            cycle = read.text((*where, "cycle"), read.required(where, mapping, "cycle"))
            if cycle is not None:
                self.refs.check_cycle((*where, "cycle"), cycle)
            owner = read.text((*where, "owner"), mapping.get("owner"))
            parent = read.text((*where, "parent"), mapping.get("parent"))
            description = read.text((*where, "description"), mapping.get("description"))
            weight = read.weight((*where, "weight"), mapping.get("weight"))
            if objective_id is not None:
                if not self.objective_ids.claim(objective_id, (*where, "id")):
                    objective_id = None
                elif parent is not None:
                    parents[objective_id] = (parent, (*where, "parent"))
            key_results = self.key_results(
                (*where, "key_results"), mapping.get("key_results"), objective_id or ""
            )
            digests = self.mirrors(
                (*where, "mirrors"),
                mapping.get("mirrors"),
                DIGEST_PREFIX + (objective_id or ""),
                digest=True,
            )
            if (
                objective_id is not None
                and title is not None
                and cycle is not None
                and weight is not None
                and key_results is not None
                and digests is not None
            ):
                objectives.append(
                    ObjectiveDef(
                        id=objective_id,
                        title=title,
                        cycle=cycle,
                        owner=owner,
                        parent=parent,
                        weight=weight,
                        description=description,
                        key_results=key_results,
                        line=read.line(where),
                        mirrors=digests,
                    )
                )
        self.refs.check_parents(parents, self.objective_ids.lines)
        return tuple(objectives)

    def key_results(
        self, path: KeyPath, value: object, objective_id: str
    ) -> tuple[KeyResultDef, ...] | None:
        if value is None:
            return ()
        items = self.read.sequence(path, value, "key_results")
        if items is None:
            return None
        results: list[KeyResultDef] = []
        complete = True
        for index, item in enumerate(items):
            kr = self.key_result((*path, index), item, objective_id)
            if kr is None:
                complete = False
            else:
                results.append(kr)
        return tuple(results) if complete else None

    def key_result(self, where: KeyPath, item: object, objective_id: str) -> KeyResultDef | None:
        read = self.read
        mapping = read.mapping(where, item, "a key result")
        if mapping is None:
            return None
        before = len(read.errors)
        allowed = field_names(KeyResultDocument)
        read.known_keys(where, mapping, allowed)
        kr_id = read.identifier(
            (*where, "id"), read.required(where, mapping, "id"), "key result id"
        )
        if kr_id is not None:
            self.kr_ids.claim(kr_id, (*where, "id"))
        title = read.text((*where, "title"), read.required(where, mapping, "title"), required=True)
        metric, expression = self.measure(where, mapping)
        kind = self.kind(where, mapping)
        numbers = {name: read.number((*where, name), mapping.get(name)) for name in _BOUNDS}
        numbers_ok = all(numbers[name] is not None or mapping.get(name) is None for name in _BOUNDS)
        target_spec: TargetSpec | None = None
        unknown_keys = any(key not in allowed for key in mapping)
        if kind is not None and numbers_ok:
            target_spec = TargetSpec(
                kind=kind,
                start=numbers["start"],
                target=numbers["target"],
                low=numbers["low"],
                high=numbers["high"],
            )
            if not unknown_keys:  # a misspelt ``targt`` already explains a missing target
                for sentence in target_spec.problems():
                    read.problem(where, sentence)
        unit = read.text((*where, "unit"), mapping.get("unit"))
        weight = read.weight((*where, "weight"), mapping.get("weight"))
        stale_after = self.default_stale
        if mapping.get("stale_after") is not None:
            stale_after = read.duration((*where, "stale_after"), mapping.get("stale_after"))
        mirrors = self.mirrors((*where, "mirrors"), mapping.get("mirrors"), kr_id or "")
        if (
            len(read.errors) > before
            or kr_id is None
            or title is None
            or kind is None
            or target_spec is None
            or weight is None
            or mirrors is None
        ):
            return None
        return KeyResultDef(
            id=kr_id,
            objective_id=objective_id,
            title=title,
            metric=metric,
            value=expression,
            kind=kind,
            target_spec=target_spec,
            start=numbers["start"],
            target=numbers["target"],
            low=numbers["low"],
            high=numbers["high"],
            unit=unit,
            weight=weight,
            stale_after=stale_after,
            mirrors=mirrors,
            line=read.line(where),
        )

    def measure(
        self, where: KeyPath, mapping: Mapping[str, Any]
    ) -> tuple[str | None, Expression | None]:
        """What a key result follows: ``(metric, None)`` or ``(None, expression)``."""
        read = self.read
        raw_metric = mapping.get("metric")
        raw_value = mapping.get("value")
        if raw_metric is not None and raw_value is not None:
            read.problem(
                where,
                "give either 'metric' or 'value', not both: 'metric' names one metric, "
                "'value' computes an expression of metrics",
            )
            return None, None
        if raw_metric is None and raw_value is None:
            read.problem(
                where,
                "missing 'metric' or 'value': name the metric this key result follows, or give "
                "an expression of metrics such as 'won / (won + lost) * 100'",
            )
            return None, None
        if raw_metric is not None:
            metric = read.text((*where, "metric"), raw_metric)
            if metric is not None and not self.refs.known_metric((*where, "metric"), metric):
                return None, None
            return metric, None
        at = (*where, "value")
        if not isinstance(raw_value, str):
            read.problem(
                at, f"expected an expression of metrics (a string), got {show_value(raw_value)}"
            )
            return None, None
        try:
            expression = Expression.parse(raw_value)
        except ExpressionError as exc:
            column = f" at character {exc.offset + 1}" if exc.offset is not None else ""
            read.problem(at, f"value expression {raw_value!r}{column}: {exc.message}")
            return None, None
        unknown = self.refs.unknown_metrics(at, expression.names)
        if not expression.names:
            read.problem(
                at, f"the value expression {raw_value!r} uses no metric, so it never changes"
            )
        if unknown or not expression.names:
            return None, None
        return None, expression

    def kind(self, where: KeyPath, mapping: Mapping[str, Any]) -> KRKind | None:
        raw = self.read.required(where, mapping, "kind")
        if raw is MISSING:
            return None
        choices = [k.value for k in KRKind]
        if isinstance(raw, str) and raw in choices:
            return KRKind(raw)
        self.read.problem(
            (*where, "kind"),
            f"unknown kind {show_value(raw)}{suggest(str(raw), choices)} "
            f"(choose one of {', '.join(choices)})",
        )
        return None

    def mirrors(
        self, path: KeyPath, value: object, owner: str, *, digest: bool = False
    ) -> tuple[MirrorDef, ...] | None:
        """A key result's mirrors, or (``digest``) an objective's; ``owner`` prefixes their keys."""
        read = self.read
        if value is None:
            return ()
        items = read.sequence(path, value, "mirrors")
        if items is None:
            return None
        mirrors: list[MirrorDef] = []
        seen: set[str] = set()
        complete = True
        common = field_names(MirrorCommon)
        for index, item in enumerate(items):
            where = (*path, index)
            mapping = read.mapping(where, item, "a mirror (at least its connection)")
            if mapping is None:
                complete = False
                continue
            connection = read.text(
                (*where, "connection"), read.required(where, mapping, "connection")
            )
            model = self.refs.mirror_model_for(where, connection, digest=digest)
            if model is None or connection is None:
                complete = False
                continue
            fields = {k: v for k, v in mapping.items() if k not in common}
            spec = validate(read, where, model, fields, secret=False, also_allowed=common)
            if not isinstance(spec, MirrorSpec):
                complete = False
                continue
            policy = self.delivery_policy(where, mapping)
            if policy is None:
                complete = False
                continue
            key = MirrorDef.make_key(owner, connection, spec)
            mirror = MirrorDef(connection, spec, key, policy)
            if mirror.key in seen:
                read.problem(where, "the same mirror is listed twice here")
                complete = False
                continue
            seen.add(mirror.key)
            mirrors.append(mirror)
        return tuple(mirrors) if complete else None

    def delivery_policy(self, path: KeyPath, mapping: dict[str, Any]) -> DeliveryPolicy | None:
        """The mirror's delivery fields: pacing, ``schedule``, ``on_change``, ``announce_stale``."""
        read = self.read
        ok = True
        interval = read.duration((*path, "min_interval"), mapping.get("min_interval"))
        ok &= mapping.get("min_interval") is None or interval is not None
        change = None
        if mapping.get("min_change") is not None:
            change = read.number((*path, "min_change"), mapping["min_change"])
            if change is not None and not Decimal(0) < change <= Decimal(1):
                read.problem((*path, "min_change"), "must be above 0 and at most 1 (= 100 points)")
                change = None
            ok &= change is not None
        quiet = None
        raw = mapping.get("quiet_hours")
        if raw is not None:
            where = (*path, "quiet_hours")
            window = read.mapping(where, raw, "quiet hours {start: '22:00', end: '07:00'}")
            if window is not None:
                read.known_keys(where, window, field_names(QuietHoursDocument))
                try:
                    quiet = QuietHours.parse(
                        str(window.get("start", "")),
                        str(window.get("end", "")),
                        str(window.get("timezone", "UTC")),
                    )
                except ValueError as exc:
                    read.problem(where, str(exc))
            ok &= quiet is not None
        schedule = None
        if mapping.get("schedule") is not None:
            schedule = read.schedule((*path, "schedule"), mapping["schedule"])
            ok &= schedule is not None
        on_change = mapping.get("on_change", True)
        if not isinstance(on_change, bool):
            read.problem((*path, "on_change"), f"expected true or false, got {on_change!r}")
            return None
        if not on_change and schedule is None:
            read.problem(
                (*path, "on_change"),
                "a mirror with on_change: false needs a schedule, or it would never be pushed",
            )
            return None
        announce_stale = mapping.get("announce_stale", True)
        if not isinstance(announce_stale, bool):
            where = (*path, "announce_stale")
            read.problem(where, f"expected true or false, got {announce_stale!r}")
            return None
        if not ok:
            return None
        return DeliveryPolicy(
            interval,
            change,
            quiet,
            on_change=on_change,
            schedule=schedule,
            announce_stale=announce_stale,
        )
