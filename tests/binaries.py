"""Programs a test drives (Prometheus, Prism) that ``.ci/run`` installs: absent, a test fails
under CI (``CI=true``, which ``.ci/run`` sets), so CI can never pass without having run it, and
skips elsewhere, saying how to install it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def require_binary(path: Path, absent: str) -> Path:
    """``path`` if it exists; else fail under CI or skip, with ``absent`` as the reason."""
    if path.exists():
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {absent}", pytrace=False)
    pytest.skip(absent)
