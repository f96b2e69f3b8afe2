"""The pure parts of "one slow vendor delays only itself": how a pass is cut into groups that
run on their own, the fetch deadline setting, and what the health and the dispatcher's sleep say.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from okrsync.config import load_config_text
from okrsync.config.models import DEFAULT_FETCH_DEADLINE
from okrsync.domain.planner import plan_queries, split_plan
from okrsync.engine.daemon import CLAIM_RETRY, MAX_SLEEP, delivery_wait
from okrsync.engine.health import still_fetching_note
from okrsync.errors import ConfigErrors
from tests.unit.config_fixtures import CONNECTORS

CONFIG = """\
version: 1
connections:
  crm: {type: fake_sql, url: "sqlite:///crm", fetch_deadline: 2m}
  billing: {type: fake_sql, url: "sqlite:///billing"}
  tickets: {type: fake_sql, url: "sqlite:///tickets", fetch_deadline: 45s}
  idle: {type: fake_sql, url: "sqlite:///idle"}
cycles:
  - {id: q4, start: 2026-10-01, end: 2026-12-31}
metrics:
  won: {connection: crm, query: "SELECT 1"}
  invoiced: {connection: billing, query: "SELECT 2"}
  paid: {connection: billing, query: "SELECT 3"}
  open: {connection: tickets, query: "SELECT 4"}
objectives:
  - id: o
    title: O
    cycle: q4
    key_results:
      - {id: won, title: Won, metric: won, kind: increase, start: 0, target: 10}
      - {id: collected, title: Collected, value: "paid / invoiced * 100", kind: increase,
         start: 0, target: 100}
      - {id: per_deal, title: Per deal, value: "invoiced / won", kind: increase, start: 0,
         target: 5}
      - {id: open, title: Open, metric: open, kind: decrease, start: 50, target: 0}
"""


def parts(metrics: set[str] | None = None) -> list[tuple[set[str], list[str], set[str]]]:
    config = load_config_text(CONFIG, CONNECTORS)
    plan = plan_queries(config, metrics=metrics)
    split = split_plan(plan)
    assert sum(p.query_count for p in split) == plan.query_count
    assert sorted(k for p in split for k in p.key_for) == sorted(plan.key_for)
    return [
        (set(p.connections), [i.key_result.id for i in p.key_results], set(p.metric_names))
        for p in split
    ]


def test_connections_a_key_result_links_form_one_group_the_others_their_own() -> None:
    assert parts() == [
        ({"billing", "crm"}, ["won", "collected", "per_deal"], {"won", "invoiced", "paid"}),
        ({"tickets"}, ["open"], {"open"}),
    ]


def test_only_the_key_results_a_due_metric_pulls_in_link_connections() -> None:
    # paid is due: "collected" needs invoiced too (same connection); per_deal is not asked, so
    # billing is not linked to crm in this pass
    assert parts({"paid", "open"}) == [
        ({"billing"}, ["collected"], {"invoiced", "paid"}),
        ({"tickets"}, ["open"], {"open"}),
    ]
    assert parts({"won"}) == [
        ({"billing", "crm"}, ["won", "per_deal"], {"won", "invoiced"}),
    ]
    assert parts(set()) == []


def test_fetch_deadline_is_per_connection_with_a_default() -> None:
    config = load_config_text(CONFIG, CONNECTORS)
    assert config.fetch_deadline("crm") == timedelta(minutes=2)
    assert config.fetch_deadline("tickets") == timedelta(seconds=45)
    assert config.fetch_deadline("billing") == DEFAULT_FETCH_DEADLINE == timedelta(seconds=90)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0s", "expected a duration like 30s"),
        ("soon", "expected a duration like 30s"),
        ("90", "expected a duration like 30s"),
    ],
)
def test_a_bad_fetch_deadline_is_named(value: str, message: str) -> None:
    text = CONFIG.replace("fetch_deadline: 45s", f"fetch_deadline: {value}")
    with pytest.raises(ConfigErrors) as caught:
        load_config_text(text, CONNECTORS)
    assert "connections.tickets.fetch_deadline" in str(caught.value)
    assert message in str(caught.value)


def test_a_misspelt_fetch_deadline_is_suggested() -> None:
    text = CONFIG.replace("fetch_deadline: 45s", "fetch_dedline: 45s")
    with pytest.raises(ConfigErrors) as caught:
        load_config_text(text, CONNECTORS)
    assert "did you mean 'fetch_deadline'" in str(caught.value)


def test_the_still_fetching_note_keeps_the_error_before_it() -> None:
    since = datetime(2026, 11, 20, 12, 0, 3, tzinfo=UTC)
    first = still_fetching_note(since, "connection 'crm': no answer within 90s")
    assert first == (
        "still fetching since 2026-11-20 12:00:03 UTC (a pass that fell due was skipped); "
        "last error: connection 'crm': no answer within 90s"
    )
    later = still_fetching_note(since + timedelta(seconds=90), first)
    assert later.startswith("still fetching since 2026-11-20 12:01:33 UTC")
    assert later.endswith("; last error: connection 'crm': no answer within 90s")
    assert still_fetching_note(since, None).endswith("was skipped)")


def test_the_dispatcher_sleeps_until_the_next_delivery_is_due() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert delivery_wait(None, now) == MAX_SLEEP.total_seconds()
    assert delivery_wait(now + timedelta(seconds=7), now) == 7
    assert delivery_wait(now + timedelta(hours=2), now) == MAX_SLEEP.total_seconds()
    # due but not claimable: another replica holds it; look again shortly, not in a busy loop
    assert delivery_wait(now, now) == CLAIM_RETRY.total_seconds()
