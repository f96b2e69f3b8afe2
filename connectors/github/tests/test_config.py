"""The README's example config loads as written, through the same loader ``okrsync`` uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connectors.github import GitHubCommentMirror, GitHubQuery, connector
from okrsync.config.loader import load_config_text
from okrsync.errors import ConfigErrors

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_yaml() -> str:
    match = re.search(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None
    return "version: 1\ncycles:\n  - {id: 2026-Q4, start: 2026-10-01, end: 2026-12-31}\n" + (
        match.group(1)
    )


def test_readme_example_loads() -> None:
    config = load_config_text(
        readme_yaml(), {"github": connector}, environ={"GITHUB_TOKEN": "ghp_x"}
    )
    metrics = config.metrics
    assert isinstance(metrics["bugs_closed"].spec, GitHubQuery)
    assert metrics["launch_done"].spec.model_dump()["milestone"] == "{cycle_id} launch"
    mirror = config.objectives[0].key_results[0].mirrors[0]
    assert mirror.spec == GitHubCommentMirror(repo="acme/okrs", issue=42)


def test_search_without_kind_fails_validation() -> None:
    text = readme_yaml().replace('search: "is:issue is:closed', 'search: "is:closed')
    with pytest.raises(ConfigErrors, match="is:issue or is:pr"):
        load_config_text(text, {"github": connector}, environ={"GITHUB_TOKEN": "ghp_x"})
