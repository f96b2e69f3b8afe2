"""The lines `okrsync plan` shows for a changed definition."""

from __future__ import annotations

from okrsync.domain.definition_diff import compare, field_diff


def test_a_one_line_field_shows_before_and_after() -> None:
    before = {"connection": "db", "query": "SELECT 1", "schedule": "every 1h"}
    after = {"connection": "db", "query": "SELECT 2", "schedule": "every 15m"}
    assert field_diff(before, after) == [
        "query:",
        "- SELECT 1",
        "+ SELECT 2",
        "schedule:",
        "- every 1h",
        "+ every 15m",
    ]


def test_a_long_query_shows_only_its_edited_lines() -> None:
    before = {"query": "SELECT SUM(amount)\nFROM deals\nWHERE won = 1"}
    after = {"query": "SELECT SUM(amount)\nFROM deals\nWHERE won = 1 AND amount > 0"}
    assert field_diff(before, after) == [
        "query:",
        "- WHERE won = 1",
        "+ WHERE won = 1 AND amount > 0",
    ]


def test_a_field_that_appears_or_goes_away() -> None:
    assert field_diff({"unit": None}, {"unit": "USD"}) == ["unit:", "+ USD"]
    assert field_diff({"unit": "USD"}, {}) == ["unit:", "- USD"]


def test_compare_sorts_names_into_added_changed_removed() -> None:
    before = {"a": {"q": "1"}, "b": {"q": "2"}, "c": {"q": "3"}}
    after = {"a": {"q": "1"}, "b": {"q": "20"}, "d": {"q": "4"}}
    added, changed, removed, unchanged = compare(before, after)
    assert (added, removed, unchanged) == (["d"], ["c"], 1)
    assert changed == {"b": ["q:", "- 2", "+ 20"]}
