"""The Linear mirror against the sandbox Linear: one project update per key result, edited."""

from __future__ import annotations

import json

import pytest

from connectors.linear import LinearConnector, LinearProjectUpdateMirror
from connectors.linear.sink import has_marker, marker, render_body
from connectors.linear.tests.conftest import Fake, update
from okrsync.errors import RetriableError, TargetNotFoundError, VendorResponseError
from okrsync.sandbox import FaultKind
from okrsync.sdk.models import Status

KR = "eng-throughput"


def project_id(fake: Fake, name: str = "Checkout revamp") -> str:
    return str(fake.data.project_named(name)["id"])


def ours(fake: Fake, pid: str) -> list[dict[str, object]]:
    return [u for u in fake.data.updates_on(pid) if has_marker(str(u["body"]), KR)]


def operations(fake: Fake) -> list[str]:
    return [str(body["query"]).split("(")[0].split()[-1] for body in fake.bodies()]


async def test_first_push_creates_one_update(fake: Fake, linear: LinearConnector) -> None:
    pid = project_id(fake)
    result = await linear.push(update(), LinearProjectUpdateMirror(project_id=pid), None)
    [created] = ours(fake, pid)
    assert result.ref == created["id"] and result.detail["action"] == "created"
    assert created["health"] == "onTrack" and created["body"] == render_body(update())
    assert fake.data.created_per_project[pid] == 1
    assert operations(fake) == ["OkrsyncProjectUpdates", "OkrsyncProjectUpdateCreate"]
    body = str(created["body"])
    assert "| Value | 42 issues |" in body and "| Target | 100 issues |" in body
    assert "**42%** · On track" in body and f"`{marker(KR)}`" in body


async def test_same_state_twice_changes_nothing(fake: Fake, linear: LinearConnector) -> None:
    mirror = LinearProjectUpdateMirror(project_id=project_id(fake))
    first = await linear.push(update(), mirror, None)
    again = await linear.push(update(), mirror, first.ref)
    assert again.ref == first.ref and again.detail["action"] == "unchanged"
    assert fake.data.edits[str(first.ref)] == 0
    assert fake.data.created_per_project[project_id(fake)] == 1


async def test_new_state_edits_the_same_update(fake: Fake, linear: LinearConnector) -> None:
    pid = project_id(fake)
    mirror = LinearProjectUpdateMirror(project_id=pid)
    first = await linear.push(update(), mirror, None)
    fake.server.reset()
    worse = update("20", status=Status.OFF_TRACK, progress="0.2")
    second = await linear.push(worse, mirror, first.ref)
    assert second.ref == first.ref and second.detail["action"] == "edited"
    assert operations(fake) == ["OkrsyncProjectUpdate", "OkrsyncProjectUpdateEdit"]
    [only] = ours(fake, pid)
    assert only["health"] == "offTrack" and "| Value | 20 issues |" in str(only["body"])
    assert fake.data.created_per_project[pid] == 1 and fake.data.edits[str(first.ref)] == 1


async def test_lost_ref_does_not_create_a_second_update(
    fake: Fake, linear: LinearConnector
) -> None:
    pid = project_id(fake)
    mirror = LinearProjectUpdateMirror(project_id=pid)
    first = await linear.push(update(), mirror, None)
    fake.data.add_people_updates(pid, 60)  # ours is now on the second page of 50
    fake.server.reset()
    same = await linear.push(update(), mirror, None)
    newer = await linear.push(update("57", progress="0.57"), mirror, None)
    assert same.ref == newer.ref == first.ref
    assert same.detail["action"] == "unchanged" and newer.detail["action"] == "edited"
    assert fake.data.created_per_project[pid] == 1 and len(ours(fake, pid)) == 1
    assert operations(fake)[:2] == ["OkrsyncProjectUpdates", "OkrsyncProjectUpdates"]


async def test_deleted_ref_falls_back_to_the_marker(fake: Fake, linear: LinearConnector) -> None:
    pid = project_id(fake)
    mirror = LinearProjectUpdateMirror(project_id=pid)
    first = await linear.push(update(), mirror, None)
    result = await linear.push(update("57", progress="0.57"), mirror, "no-such-update")
    assert result.ref == first.ref and fake.data.created_per_project[pid] == 1


async def test_project_by_name_and_no_data_health(fake: Fake, linear: LinearConnector) -> None:
    mirror = LinearProjectUpdateMirror(project="Mobile app v2")
    result = await linear.push(update(None, status=Status.NO_DATA, progress=None), mirror, None)
    [created] = ours(fake, project_id(fake, "Mobile app v2"))
    assert result.ref == created["id"] and created["health"] == "atRisk"
    assert "No progress yet · No data" in str(created["body"])
    keep = LinearProjectUpdateMirror(project="Mobile app v2", no_data_health="unchanged")
    mine = fake.data.updates[-1]
    mine["health"] = "offTrack"  # someone set it by hand
    again = await linear.push(update(None, status=Status.NO_DATA, progress=None), keep, result.ref)
    assert again.detail["action"] == "unchanged" and mine["health"] == "offTrack"


async def test_unknown_project_names_the_mirror(linear: LinearConnector) -> None:
    mirror = LinearProjectUpdateMirror(project_id="00000000-0000-4000-8000-000000000000")
    with pytest.raises(TargetNotFoundError) as caught:
        await linear.push(update(), mirror, None)
    text = str(caught.value)
    assert text.startswith(
        "connection 'lin', mirror project '00000000-0000-4000-8000-000000000000' of key result "
        "'eng-throughput': not found in Linear"
    )
    assert "Entity not found: Project" in text
    named = LinearProjectUpdateMirror(project="Nope")
    with pytest.raises(TargetNotFoundError, match="Linear has no project named 'Nope'"):
        await linear.push(update(), named, None)


async def test_failed_create_is_not_retried_blindly(fake: Fake, linear: LinearConnector) -> None:
    pid = project_id(fake)
    mirror = LinearProjectUpdateMirror(project_id=pid)
    # the lookup passes, the create's answer is a 502: the sink looks again, does not re-post
    fake.fault(FaultKind.LATENCY, delay=0.0, times=1)
    fake.fault(FaultKind.STATUS, status=502, body="bad gateway", times=1)
    with pytest.raises(RetriableError, match="connection 'lin', mirror project"):
        await linear.push(update(), mirror, None)
    assert operations(fake) == [
        "OkrsyncProjectUpdates",
        "OkrsyncProjectUpdateCreate",
        "OkrsyncProjectUpdates",
    ]
    assert fake.data.created_per_project[pid] == 0
    result = await linear.push(update(), mirror, None)
    assert result.detail["action"] == "created" and fake.data.created_per_project[pid] == 1


async def test_a_looping_update_listing_fails_the_push_instead_of_creating_a_second(
    fake: Fake, linear: LinearConnector
) -> None:
    pid = project_id(fake)
    updates = {"nodes": [], "pageInfo": {"hasNextPage": True, "endCursor": "u-1"}}
    body = json.dumps({"data": {"project": {"id": pid, "projectUpdates": updates}}})
    fake.fault(FaultKind.STATUS, status=200, body=body, times=-1)
    with pytest.raises(VendorResponseError, match="pagination loop") as caught:
        await linear.push(update(), LinearProjectUpdateMirror(project_id=pid), None)
    assert caught.value.subject == f"mirror project {pid!r} of key result {KR!r}"
    assert fake.data.created_per_project.get(pid, 0) == 0
    assert operations(fake) == ["OkrsyncProjectUpdates", "OkrsyncProjectUpdates"]
