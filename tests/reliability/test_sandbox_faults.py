"""A latency fault on a request with a body (the harness delays sinks this way)."""

from __future__ import annotations

import httpx

from connectors.webhook.receiver import receiver_app
from okrsync.sandbox import Fault, FaultKind, SandboxServer


def test_a_latency_fault_delays_a_post_and_lets_the_fake_answer() -> None:
    app = receiver_app()
    with SandboxServer(app, name="hook") as hook:
        hook.faults.add(Fault(kind=FaultKind.LATENCY, delay=0.1, times=1))
        answer = httpx.post(f"{hook.url}/okr", json={"value": "1"}, timeout=3)
    assert answer.status_code == 200
    assert len(app.state.receiver.received) == 1
