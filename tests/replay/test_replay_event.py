"""``POST /v1/events/{id}/replay``: to one named endpoint, or to every endpoint subscribed *now*;
new manual deliveries of the same event in one transaction; nothing for another account's
objects or a disabled endpoint; bodies checked like every other."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.core.events import Event, envelope
from service.replay import replay_targets
from tests.backends import writing
from tests.factories import make_endpoint
from tests.replay.conftest import T0, Bench, assert_error

COUNT_DELIVERIES = "SELECT COUNT(*) FROM deliveries"


async def test_without_an_endpoint_it_goes_to_every_endpoint_subscribed_now(bench: Bench) -> None:
    who = await bench.caller()
    everything = await bench.endpoint(who, "/all")
    failures_only = await bench.endpoint(who, "/failed", event_types=["task.failed"])
    paused = await bench.endpoint(who, "/paused")
    gone = await bench.endpoint(who, "/gone")
    event = await bench.event(who)
    assert (await bench.client.patch(
        f"/v1/endpoints/{paused['id']}", json={"enabled": False}, headers=who.headers
    )).status_code == 200  # fmt: skip
    deleted = await bench.client.delete(f"/v1/endpoints/{gone['id']}", headers=who.headers)
    assert deleted.status_code == 204
    newcomer = await bench.endpoint(who, "/new")

    response = await bench.post(who, f"/v1/events/{event.id}/replay", {})

    assert response.status_code == 202, response.text
    queued = response.json()["deliveries"]
    assert {d["endpoint_id"] for d in queued} == {everything["id"], newcomer["id"]}
    assert failures_only["id"] not in {d["endpoint_id"] for d in queued}
    assert all(d["manual"] and d["event_id"] == event.id for d in queued)
    listed = (await bench.get(who, f"/v1/events/{event.id}/deliveries"))["data"]
    manual = {d["id"] for d in listed if d["manual"]}
    assert manual == {d["id"] for d in queued}


async def test_an_empty_or_absent_body_means_every_subscribed_endpoint(bench: Bench) -> None:
    who = await bench.caller()
    await bench.endpoint(who)
    event = await bench.event(who)

    bare = await bench.client.post(f"/v1/events/{event.id}/replay", headers=who.headers)
    null = await bench.post(who, f"/v1/events/{event.id}/replay", {"endpoint_id": None})

    for response in (bare, null):
        assert response.status_code == 202, response.text
        assert len(response.json()["deliveries"]) == 1


async def test_a_named_endpoint_gets_it_whatever_its_filter(bench: Bench) -> None:
    who = await bench.caller()
    await bench.endpoint(who, "/all")
    picky = await bench.endpoint(who, "/picky", event_types=["task.failed"])
    event = await bench.event(who, "task.succeeded")
    before = await bench.rows(COUNT_DELIVERIES)

    response = await bench.post(who, f"/v1/events/{event.id}/replay", {"endpoint_id": picky["id"]})

    assert response.status_code == 202, response.text
    [queued] = response.json()["deliveries"]
    assert queued["endpoint_id"] == picky["id"]
    assert (await bench.rows(COUNT_DELIVERIES))[0][0] == before[0][0] + 1


async def test_a_ping_replays_only_to_the_endpoint_it_tested(bench: Bench) -> None:
    who = await bench.caller()
    tested = await bench.endpoint(who, "/tested")
    await bench.endpoint(who, "/other")
    ping = await bench.post(who, f"/v1/endpoints/{tested['id']}/test")
    assert ping.status_code == 202, ping.text

    response = await bench.post(who, f"/v1/events/{ping.json()['id']}/replay")

    assert response.status_code == 202, response.text
    assert [d["endpoint_id"] for d in response.json()["deliveries"]] == [tested["id"]]


def test_replay_targets_keep_an_endpoint_disabled_notice_from_its_subject() -> None:
    base = make_endpoint("acct_1", "https://a.example/", now=T0, id="ep_A")
    subject, other = base, replace(base, id="ep_B")
    payload = envelope("endpoint.disabled", {"endpoint_id": "ep_A"}, T0)
    notice = Event("evt_1", "acct_1", "endpoint.disabled", None, payload, T0)
    ping = Event("evt_2", "acct_1", "ping", None, envelope("ping", {"endpoint_id": "ep_B"}, T0), T0)

    assert replay_targets(notice, [subject, other]) == [other]
    assert replay_targets(ping, [subject, other]) == [other]
    assert replay_targets(ping, [subject, replace(other, enabled=False)]) == []


async def test_no_subscribed_endpoint_queues_nothing(bench: Bench) -> None:
    who = await bench.caller()
    event = await bench.event(who)

    response = await bench.post(who, f"/v1/events/{event.id}/replay")

    assert response.status_code == 202, response.text
    assert response.json() == {"event_id": event.id, "deliveries": []}


async def test_a_disabled_endpoint_is_refused_and_nothing_is_written(bench: Bench) -> None:
    who = await bench.caller()
    paused = await bench.endpoint(who)
    event = await bench.event(who)
    await bench.client.patch(
        f"/v1/endpoints/{paused['id']}", json={"enabled": False}, headers=who.headers
    )
    before = await bench.rows(COUNT_DELIVERIES)

    response = await bench.post(who, f"/v1/events/{event.id}/replay", {"endpoint_id": paused["id"]})

    assert_error(response, 409, "endpoint_disabled", "endpoint_id")
    assert await bench.rows(COUNT_DELIVERIES) == before


async def test_another_accounts_event_or_endpoint_is_404(bench: Bench) -> None:
    alice, bob = await bench.caller("alice"), await bench.caller("bob")
    hers = await bench.endpoint(alice, "/alice")
    his = await bench.endpoint(bob, "/bob")
    event = await bench.event(alice)
    before = await bench.rows(COUNT_DELIVERIES)

    assert_error(await bench.post(bob, f"/v1/events/{event.id}/replay"), 404, "not_found")
    assert_error(
        await bench.post(alice, f"/v1/events/{event.id}/replay", {"endpoint_id": his["id"]}),
        404, "not_found", "endpoint_id",
    )  # fmt: skip
    assert_error(
        await bench.post(bob, f"/v1/events/{event.id}/replay", {"endpoint_id": hers["id"]}),
        404, "not_found",
    )  # fmt: skip
    assert await bench.rows(COUNT_DELIVERIES) == before


async def test_a_deleted_endpoint_is_404(bench: Bench) -> None:
    who = await bench.caller()
    gone = await bench.endpoint(who)
    event = await bench.event(who)
    await bench.client.delete(f"/v1/endpoints/{gone['id']}", headers=who.headers)

    response = await bench.post(who, f"/v1/events/{event.id}/replay", {"endpoint_id": gone["id"]})

    assert_error(response, 404, "not_found", "endpoint_id")


@pytest.mark.parametrize("event_id", ["evt_01J00000000000000000000000", "nope", "ep_x"])
async def test_an_unknown_event_is_404(bench: Bench, event_id: str) -> None:
    who = await bench.caller()
    assert_error(await bench.post(who, f"/v1/events/{event_id}/replay"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ([], 422, "validation_error"),
        ({"endpoint_id": 7}, 422, "validation_error"),
        ({"endpoint": "ep_x"}, 422, "validation_error"),
        ({"endpoint_id": "not-an-id"}, 404, "not_found"),
    ],
)
async def test_bad_bodies_are_refused(bench: Bench, body: object, status: int, code: str) -> None:
    who = await bench.caller()
    event = await bench.event(who)

    assert_error(await bench.post(who, f"/v1/events/{event.id}/replay", body), status, code)


async def test_a_body_must_be_json(bench: Bench) -> None:
    who = await bench.caller()
    event = await bench.event(who)
    path = f"/v1/events/{event.id}/replay"
    json_type = {**who.headers, "Content-Type": "application/json"}

    text = await bench.client.post(path, content=b"x", headers={**who.headers})
    broken = await bench.client.post(path, content=b"{", headers=json_type)
    huge = await bench.client.post(path, content=b" " * (2 * 1024 * 1024), headers=json_type)

    assert_error(text, 415, "unsupported_media_type")
    assert_error(broken, 400, "malformed_request")
    assert_error(huge, 413, "payload_too_large")
    assert_error(await bench.client.post(path), 401, "unauthorized")


async def test_an_event_purged_by_retention_shows_no_payload_and_is_not_sent(
    bench: Bench,
) -> None:
    who = await bench.caller()
    endpoint = (await bench.endpoint(who))["id"]
    purged = await bench.failed_event(who, endpoint)
    kept = await bench.failed_event(who, endpoint)
    async with writing(bench.store) as conn:  # as the retention job leaves it
        await conn.execute("UPDATE events SET payload = '' WHERE id = ?", (purged.id,))
    before = await bench.rows(COUNT_DELIVERIES)

    shown = await bench.get(who, f"/v1/events/{purged.id}")
    replayed = await bench.post(who, f"/v1/events/{purged.id}/replay")
    counted = await bench.post(
        who, f"/v1/endpoints/{endpoint}/recover", {"since": "2020-01-01T00:00:00Z", "dry_run": True}
    )

    assert shown["payload"] is None
    assert_error(replayed, 409, "event_purged")
    assert counted.json() == {"count": 1, "dry_run": True}
    assert await bench.rows(COUNT_DELIVERIES) == before
    recovered = await bench.post(
        who, f"/v1/endpoints/{endpoint}/recover", {"since": "2020-01-01T00:00:00Z"}
    )
    assert [d["event_id"] for d in recovered.json()["deliveries"]] == [kept.id]
