"""``POST /v1/endpoints/{id}/recover {since, until?, dry_run?}``: the window is on the failed
delivery's ``created_at`` (``since`` inclusive, ``until`` exclusive); only failures, only this
endpoint's, each event once; a dry run counts and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from service.core.clock import to_rfc3339
from tests.conftest import Caller
from tests.replay.conftest import SECOND, T0, Bench, assert_error

EVERYTHING = "SELECT * FROM deliveries ORDER BY id"


async def recover(bench: Bench, who: Caller, endpoint_id: str, **body: Any) -> dict[str, Any]:
    response = await bench.post(who, f"/v1/endpoints/{endpoint_id}/recover", body)
    assert response.status_code == (200 if body.get("dry_run") else 202), response.text
    result: dict[str, Any] = response.json()
    return result


async def failures_at(bench: Bench, who: Caller, endpoint_id: str, *offsets_s: int) -> list[str]:
    """One failed event per offset (seconds after T0); returns their ids."""
    ids = []
    for offset in offsets_s:
        bench.at(T0 + offset * SECOND)
        ids.append((await bench.failed_event(who, endpoint_id)).id)
    return ids


def at(offset_s: int, ms: int = 0) -> str:
    return to_rfc3339(T0 + offset_s * SECOND + ms)


async def test_the_window_includes_only_failures_inside_it(bench: Bench) -> None:
    who = await bench.caller()
    endpoint = (await bench.endpoint(who))["id"]
    early, inside, late = await failures_at(bench, who, endpoint, 10, 20, 30)

    result = await recover(bench, who, endpoint, since=at(15), until=at(25))

    assert result["count"] == 1
    assert [d["event_id"] for d in result["deliveries"]] == [inside]
    rest = await recover(bench, who, endpoint, since=at(0))
    assert [d["event_id"] for d in rest["deliveries"]] == [early, late]


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        # Bench.event ticks the clock: the failure is at 20 s + 1 ms
        (at(20, 1), at(20, 2), 1),  # since is inclusive
        (at(20, 2), None, 0),
        (at(20, 0), at(20, 1), 0),  # until is exclusive
        (at(0), None, 1),  # until omitted: no upper bound
        (at(20, 1), at(20, 1), 0),  # until <= since: an empty window, not an error
        (at(30), at(0), 0),
    ],
)
async def test_the_window_bounds(
    bench: Bench, since: str, until: str | None, expected: int
) -> None:
    who = await bench.caller()
    endpoint = (await bench.endpoint(who))["id"]
    await failures_at(bench, who, endpoint, 20)
    body = {"since": since} if until is None else {"since": since, "until": until}

    assert (await recover(bench, who, endpoint, dry_run=True, **body))["count"] == expected
    assert (await recover(bench, who, endpoint, **body))["count"] == expected


async def test_the_window_is_on_the_failed_delivery_not_the_event(bench: Bench) -> None:
    who = await bench.caller()
    endpoint = (await bench.endpoint(who))["id"]
    [old] = await failures_at(bench, who, endpoint, 10)
    bench.at(T0 + 50 * SECOND)
    await bench.post(who, f"/v1/events/{old}/replay", {"endpoint_id": endpoint})
    async with bench.store.transaction() as tx:  # the replay failed too
        await tx.fail_pending_deliveries(endpoint, "gave up", bench.now[0])

    result = await recover(bench, who, endpoint, since=at(40))

    assert [d["event_id"] for d in result["deliveries"]] == [old]  # once, though it failed twice


async def test_only_this_endpoints_failures_and_only_failures(bench: Bench) -> None:
    who = await bench.caller()
    mine = (await bench.endpoint(who, "/mine"))["id"]
    other = (await bench.endpoint(who, "/other"))["id"]
    failed_here = await bench.failed_event(who, mine)  # still pending to /other
    await bench.failed_event(who, other)  # still pending to /mine
    await bench.event(who)  # pending to both

    result = await recover(bench, who, mine, since=at(-1))

    assert [d["event_id"] for d in result["deliveries"]] == [failed_here.id]
    assert {d["endpoint_id"] for d in result["deliveries"]} == {mine}
    assert all(d["manual"] and d["status"] == "pending" for d in result["deliveries"])


async def test_a_second_recovery_does_not_send_anything_twice(bench: Bench) -> None:
    who = await bench.caller()
    endpoint = (await bench.endpoint(who))["id"]
    await failures_at(bench, who, endpoint, 1, 2)

    first = await recover(bench, who, endpoint, since=at(0))
    second = await recover(bench, who, endpoint, since=at(0))

    assert first["count"] == 2
    assert second == {"count": 0, "deliveries": []}


async def test_a_dry_run_counts_and_changes_nothing(bench: Bench) -> None:
    who = await bench.caller()
    endpoint = (await bench.endpoint(who))["id"]
    await failures_at(bench, who, endpoint, 1, 2, 3)
    before = await bench.rows(EVERYTHING)

    result = await recover(bench, who, endpoint, since=at(0), dry_run=True)

    assert result == {"count": 3, "dry_run": True}
    assert await bench.rows(EVERYTHING) == before
    assert (await recover(bench, who, endpoint, since=at(0), dry_run=False))["count"] == 3


async def test_a_disabled_endpoint_can_be_counted_but_not_recovered(bench: Bench) -> None:
    who = await bench.caller()
    endpoint = (await bench.endpoint(who))["id"]
    await failures_at(bench, who, endpoint, 1)
    await bench.client.patch(
        f"/v1/endpoints/{endpoint}", json={"enabled": False}, headers=who.headers
    )
    before = await bench.rows(EVERYTHING)

    counted = await recover(bench, who, endpoint, since=at(0), dry_run=True)
    refused = await bench.post(who, f"/v1/endpoints/{endpoint}/recover", {"since": at(0)})

    assert counted == {"count": 1, "dry_run": True}
    assert_error(refused, 409, "endpoint_disabled", "endpoint_id")
    assert await bench.rows(EVERYTHING) == before


async def test_another_accounts_or_a_deleted_endpoint_is_404(bench: Bench) -> None:
    alice, bob = await bench.caller("alice"), await bench.caller("bob")
    hers = (await bench.endpoint(alice, "/a"))["id"]
    gone = (await bench.endpoint(bob, "/b"))["id"]
    await failures_at(bench, alice, hers, 1)
    await bench.client.delete(f"/v1/endpoints/{gone}", headers=bob.headers)
    before = await bench.rows(EVERYTHING)

    for who, endpoint, dry_run in [(bob, hers, False), (bob, hers, True), (bob, gone, False)]:
        response = await bench.post(
            who, f"/v1/endpoints/{endpoint}/recover", {"since": at(0), "dry_run": dry_run}
        )
        assert_error(response, 404, "not_found", "endpoint_id")
    assert_error(
        await bench.post(bob, "/v1/endpoints/nope/recover", {"since": at(0)}), 404, "not_found"
    )
    assert await bench.rows(EVERYTHING) == before


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 422, "since"),
        ({"since": None}, 422, "since"),
        ({"since": "yesterday"}, 400, "since"),
        ({"since": "2026-01-01T00:00:00"}, 400, "since"),  # no offset
        ({"since": 1700000000}, 400, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "soon"}, 400, "until"),
        ({"since": "2026-01-01T00:00:00Z", "dry_run": "yes"}, 422, "dry_run"),
        ({"since": "2026-01-01T00:00:00Z", "from": "x"}, 422, "from"),
        ([], 422, None),
    ],
)
async def test_bad_bodies_are_refused(
    bench: Bench, body: object, status: int, field: str | None
) -> None:
    who = await bench.caller()
    endpoint = (await bench.endpoint(who))["id"]

    response = await bench.post(who, f"/v1/endpoints/{endpoint}/recover", body)

    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field


async def test_recover_needs_a_json_body_and_a_key(bench: Bench) -> None:
    who = await bench.caller()
    endpoint = (await bench.endpoint(who))["id"]
    path = f"/v1/endpoints/{endpoint}/recover"

    assert_error(await bench.client.post(path, headers=who.headers), 415, "unsupported_media_type")
    assert_error(
        await bench.client.post(
            path, content=b"{", headers={**who.headers, "Content-Type": "application/json"}
        ),
        400, "malformed_request",
    )  # fmt: skip
    assert_error(await bench.client.post(path, json={"since": at(0)}), 401, "unauthorized")
