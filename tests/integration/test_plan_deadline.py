"""`okrsync plan` asks each connection within its ``fetch_deadline``, as a run does: a vendor
that hangs shows as that connection's error instead of hanging the review step."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from connectors.http_json import connector as http_json
from connectors.http_json.fake import DEFAULT_TOKEN
from okrsync.config import load_config_text
from okrsync.engine.plan_report import build_plan
from okrsync.plugins import load_registry
from okrsync.redaction import Redactor
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.settings import Settings

CONFIG = """\
version: 1
connections:
  api: {{type: http_json, url: "{api}", auth: {{type: bearer, token: "{token}"}},
         fetch_deadline: 1s, timeout: 60}}
cycles:
  - {{id: q4, start: 2026-10-01, end: 2026-12-31}}
metrics:
  won: {{connection: api, request_path: /v1/deals/summary, json_path: $.count}}
objectives:
  - id: o
    title: O
    cycle: q4
    key_results:
      - {{id: won, title: Won, metric: won, kind: increase, start: 0, target: 10}}
"""


async def test_plan_gives_up_on_a_hung_vendor_at_its_deadline(tmp_path: Path) -> None:
    assert http_json.fake is not None
    registry = load_registry()
    with SandboxServer(http_json.fake(), name="api") as api:
        api.faults.add(Fault(kind=FaultKind.LATENCY, delay=120, times=-1))
        text = CONFIG.format(api=api.url, token=DEFAULT_TOKEN)
        config = load_config_text(text, registry.connectors)
        settings = Settings(database_url=SecretStr(f"sqlite:///{tmp_path / 'none.db'}"))
        result = await build_plan(settings, config, registry, Redactor(), fetch=True)
    (change,) = result.changes
    assert change.error is not None and "no answer within 1s" in change.error
    assert not (tmp_path / "none.db").exists()  # plan writes nothing
