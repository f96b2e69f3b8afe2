"""The pure rules of okrsync: schedules, expressions, progress, statuses, pacing, backoff,
plausibility, query planning and evaluation.

The layering rule: ``okrsync.config``, ``okrsync.store`` and ``okrsync.engine`` import from
``okrsync.domain``; ``okrsync.domain`` never imports from them (nor from ``okrsync.api`` or
``okrsync.cli``) at runtime. Names from the config are used for types only, under
``if TYPE_CHECKING:``. ``tests/unit/test_layering.py`` holds the rule.
"""
