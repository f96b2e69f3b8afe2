"""The objectives section: objectives, their key results, and where each result is mirrored.

Objective ids are unique, key result ids are unique across all objectives, parents form no loop,
and every cycle, metric and connection named here is declared by its own section. The shape and
the value of every field come from the document models (:class:`ObjectiveDocument`,
:class:`KeyResultDocument`, :class:`MirrorCommon`); what is read here looks across them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, TypeAdapter

from okrsync.config.check_ins import CheckInPolicy, check_check_ins, check_stretch
from okrsync.config.crossrefs import CrossReferences, UniqueIds
from okrsync.config.entries import distinct_entries
from okrsync.config.models import (
    DIGEST_PREFIX,
    KeyResultDef,
    KeyResultDocument,
    MirrorCommon,
    MirrorDef,
    ObjectiveDef,
    ObjectiveDocument,
    ObjectiveList,
)
from okrsync.config.pydantic_errors import check, valid_fields, validate
from okrsync.config.reporting import Reporter
from okrsync.config.work import WorkReader
from okrsync.config.yaml_source import KeyPath
from okrsync.domain.expressions import Expression
from okrsync.domain.grading import DEFAULT_GRADING, GradingRule
from okrsync.domain.progress import KRKind, TargetSpec
from okrsync.errors import ExpressionError
from okrsync.sdk.connector import MirrorSpec

_OBJECTIVES = TypeAdapter(ObjectiveList)
_MIRROR_FIELDS = frozenset(MirrorCommon.model_fields)
_BOUND_FIELDS = frozenset(("start", "target", "low", "high"))
_KEY_RESULT_FIELDS = frozenset(KeyResultDocument.model_fields)


class ObjectivesReader:
    """Reads the objectives section against what the other sections declared.

    The section is validated by its document models in one call; when that fails, its errors
    are reported and each entry is read again field by field (:func:`valid_fields`), so that
    what is right in it is still checked against the rest of the config."""

    def __init__(
        self,
        read: Reporter,
        refs: CrossReferences,
        default_stale: timedelta | None,
        default_grading: GradingRule = DEFAULT_GRADING,
    ) -> None:
        self.read = read
        self.refs = refs
        self.default_stale = default_stale
        self.work = WorkReader(read, refs)
        self.default_grading = default_grading
        self.objective_ids = UniqueIds(read, "objective")
        self.kr_ids = UniqueIds(
            read, "key result", "; key result ids must be unique across all objectives"
        )

    def section(self, value: object) -> tuple[ObjectiveDef, ...] | None:
        path: KeyPath = ("objectives",)
        if value is None:
            return ()
        documents, problems = check(_OBJECTIVES, value, shape=ObjectiveList, at=path)
        for loc, message in problems:
            self.read.problem((*path, *loc), message)
        if documents is not None and isinstance(value, list):
            entries = [(doc.__dict__, True, raw) for doc, raw in zip(documents, value, strict=True)]
        elif isinstance(value, list):
            entries = [_entry(ObjectiveDocument, raw) for raw in value]
        else:
            return None
        objectives: list[ObjectiveDef] = []
        parents: dict[str, tuple[str, KeyPath]] = {}
        for index, (fields, whole, raw) in enumerate(entries):
            objective = self.objective((*path, index), fields, whole, raw, parents)
            if objective is not None:
                objectives.append(objective)
        self.refs.check_parents(parents, self.objective_ids.lines)
        return tuple(objectives)

    def objective(
        self,
        where: KeyPath,
        fields: dict[str, Any],
        whole: bool,
        raw: Any,
        parents: dict[str, tuple[str, KeyPath]],
    ) -> ObjectiveDef | None:
        objective_id: str | None = fields.get("id")
        if "cycle" in fields:
            self.refs.check_cycle((*where, "cycle"), fields["cycle"])
        parent: str | None = fields.get("parent")
        if objective_id is not None:
            if not self.objective_ids.claim(objective_id, (*where, "id")):
                objective_id = None
            elif parent is not None:
                parents[objective_id] = (parent, (*where, "parent"))
        key_results = self.key_results(
            (*where, "key_results"), fields, raw, objective_id or "", whole=whole
        )
        digests = (
            self.mirrors(
                (*where, "mirrors"),
                fields["mirrors"],
                DIGEST_PREFIX + (objective_id or ""),
                digest=True,
            )
            if "mirrors" in fields
            else None
        )
        work = (
            self.work.entries((*where, "work"), fields["work"], objective_id or "", None)
            if "work" in fields
            else None
        )
        if (
            not whole
            or objective_id is None
            or key_results is None
            or digests is None
            or work is None
        ):
            return None
        return ObjectiveDef(
            id=objective_id,
            title=fields["title"],
            cycle=fields["cycle"],
            owner=fields["owner"],
            parent=parent,
            weight=fields["weight"],
            description=fields["description"],
            key_results=key_results,
            line=self.read.line(where),
            mirrors=digests,
            work=work,
        )

    def key_results(
        self, path: KeyPath, fields: dict[str, Any], raw: Any, objective_id: str, *, whole: bool
    ) -> tuple[KeyResultDef, ...] | None:
        if whole:
            entries = [
                (doc.__dict__, True, item)
                for doc, item in zip(
                    fields["key_results"], raw.get("key_results") or (), strict=True
                )
            ]
        else:
            items = raw.get("key_results") if isinstance(raw, dict) else None
            if not isinstance(items, list):
                return None
            entries = [_entry(KeyResultDocument, item) for item in items]
        results: list[KeyResultDef] = []
        complete = whole
        for index, (kr_fields, kr_whole, item) in enumerate(entries):
            kr = self.key_result((*path, index), kr_fields, kr_whole, item, objective_id)
            if kr is None:
                complete = False
            else:
                results.append(kr)
        return tuple(results) if complete else None

    def key_result(
        self, where: KeyPath, fields: dict[str, Any], whole: bool, raw: Any, objective_id: str
    ) -> KeyResultDef | None:
        read = self.read
        if not isinstance(raw, dict):
            return None
        before = len(read.errors)
        kr_id: str | None = fields.get("id")
        if kr_id is not None:
            self.kr_ids.claim(kr_id, (*where, "id"))
        metric, expression = self.measure(where, fields, raw)
        kind: KRKind | None = fields.get("kind")
        target_spec: TargetSpec | None = None
        unknown_keys = not whole and any(key not in _KEY_RESULT_FIELDS for key in raw)
        if kind is not None and fields.keys() >= _BOUND_FIELDS:
            target_spec = TargetSpec(
                kind=kind,
                start=fields["start"],
                target=fields["target"],
                low=fields["low"],
                high=fields["high"],
            )
            if not unknown_keys:  # a misspelt ``targt`` already explains a missing target
                for sentence in target_spec.problems():
                    read.problem(where, sentence)
            check_stretch(read, where, target_spec, fields.get("stretch"))
        manual = raw.get("metric") is None and raw.get("value") is None
        check_check_ins(read, self.refs, where, fields.get("check_ins"), manual=manual)
        mirrors = (
            self.mirrors((*where, "mirrors"), fields["mirrors"], kr_id or "")
            if "mirrors" in fields
            else None
        )
        work = (
            self.work.entries((*where, "work"), fields["work"], objective_id, kr_id or "")
            if "work" in fields
            else None
        )
        if (
            not whole
            or work is None
            or len(read.errors) > before
            or kr_id is None
            or kind is None
            or target_spec is None
            or mirrors is None
        ):
            return None
        stale_after: timedelta | None = fields["stale_after"]
        return KeyResultDef(
            id=kr_id,
            objective_id=objective_id,
            title=fields["title"],
            metric=metric,
            value=expression,
            kind=kind,
            target_spec=target_spec,
            start=fields["start"],
            target=fields["target"],
            low=fields["low"],
            high=fields["high"],
            unit=fields["unit"],
            weight=fields["weight"],
            stale_after=stale_after if stale_after is not None else self.default_stale,
            mirrors=mirrors,
            line=read.line(where),
            work=work,
            stretch=fields["stretch"],
            grading=fields["grading"] or self.default_grading,
            check_ins=CheckInPolicy.of(fields["check_ins"]),
            decimals=fields.get("decimals"),
        )

    def measure(
        self, where: KeyPath, fields: dict[str, Any], raw: dict[str, Any]
    ) -> tuple[str | None, Expression | None]:
        """What a key result follows: ``(metric, None)`` or ``(None, expression)``."""
        read = self.read
        if raw.get("metric") is not None and raw.get("value") is not None:
            read.problem(
                where,
                "give either 'metric' or 'value', not both: 'metric' names one metric, "
                "'value' computes an expression of metrics",
            )
            return None, None
        if raw.get("metric") is None and raw.get("value") is None:
            return None, None  # a manual key result: check-ins set its value
        metric: str | None = fields.get("metric")
        text: str | None = fields.get("value")
        if metric is not None:
            if not self.refs.known_metric((*where, "metric"), metric):
                return None, None
            return metric, None
        if text is None:
            return None, None  # reported as not a string
        at = (*where, "value")
        try:
            expression = Expression.parse(text)
        except ExpressionError as exc:
            column = f" at character {exc.offset + 1}" if exc.offset is not None else ""
            read.problem(at, f"value expression {text!r}{column}: {exc.message}")
            return None, None
        unknown = self.refs.unknown_metrics(at, expression.names)
        if not expression.names:
            read.problem(at, f"the value expression {text!r} uses no metric, so it never changes")
        if unknown or not expression.names:
            return None, None
        return None, expression

    def mirrors(
        self, path: KeyPath, items: list[dict[str, Any]], owner: str, *, digest: bool = False
    ) -> tuple[MirrorDef, ...] | None:
        """A key result's mirrors, or (``digest``) an objective's; ``owner`` prefixes their keys."""
        return distinct_entries(
            self.read,
            path,
            items,
            lambda where, item: self.mirror(where, item, owner, digest=digest),
            "the same mirror is listed twice here",
        )

    def mirror(
        self, where: KeyPath, item: dict[str, Any], owner: str, *, digest: bool
    ) -> MirrorDef | None:
        """One mirror: its connection's sink checks the connector's fields, then the delivery
        fields every mirror has (:class:`MirrorCommon`)."""
        read = self.read
        common = {k: v for k, v in item.items() if k in _MIRROR_FIELDS}
        delivery, problems = check(MirrorCommon, common)
        connection_problems = [p for p in problems if p[0][:1] == ("connection",)]
        for loc, message in connection_problems:
            read.problem((*where, *loc), message)
        if connection_problems:
            return None
        connection = item["connection"] if delivery is None else delivery.connection
        model = self.refs.mirror_model_for(where, str(connection), digest=digest)
        if model is None:
            return None
        fields = {k: v for k, v in item.items() if k not in _MIRROR_FIELDS}
        spec = validate(read, where, model, fields, secret=False, also_allowed=_MIRROR_FIELDS)
        if not isinstance(spec, MirrorSpec):
            return None
        for loc, message in problems:
            read.problem((*where, *loc), message)
        if delivery is None:
            return None
        if not delivery.on_change and delivery.schedule is None:
            read.problem(
                (*where, "on_change"),
                "a mirror with on_change: false needs a schedule, or it would never be pushed",
            )
            return None
        key = MirrorDef.make_key(owner, delivery.connection, spec)
        return MirrorDef(delivery.connection, spec, key, delivery.delivery_policy())


def _entry(model: type[BaseModel], raw: Any) -> tuple[dict[str, Any], bool, Any]:
    """An entry its section's validation refused (already reported): what of it is valid."""
    if not isinstance(raw, dict):
        return {}, False, raw
    fields, _ = valid_fields(model, raw)
    return fields, False, raw
