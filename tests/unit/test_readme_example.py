"""README's connector example is the example plugin's source, not a copy that drifts from it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "examples" / "okrsync-sentry" / "okrsync_sentry" / "__init__.py"


def test_readme_shows_the_example_plugin_as_it_is() -> None:
    source = SOURCE.read_text()
    shown = source[source.index("class SentryConnection") :].rstrip("\n")
    assert f"```python\n{shown}\n```" in (ROOT / "README.md").read_text()


def test_the_http_source_itself_is_under_sixty_lines() -> None:
    source = SOURCE.read_text()
    body = source[source.index("class SentryConnection") : source.index("\nconnector = ")]
    assert len(body.strip("\n").splitlines()) < 60
