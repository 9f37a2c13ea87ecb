"""Replays over real HTTP: a delivery that failed until it was given up on is recovered once the
receiver is fixed and arrives with the original ``webhook-id``, verified by the reference
``standardwebhooks`` package; an event replayed to one endpoint reaches that one only."""

from __future__ import annotations

import json

from standardwebhooks.webhooks import Webhook

from service.core.clock import to_rfc3339
from tests.replay.conftest import Bench


async def test_an_exhausted_delivery_is_recovered_after_the_receiver_is_fixed(
    bench: Bench,
) -> None:
    bench.realtime()
    who = await bench.caller()
    bench.receiver.script["/down"] = [503]
    endpoint = await bench.endpoint(who, "/down")
    since = to_rfc3339(bench.now[0])
    event = await bench.event(who)
    for _ in range(6):
        await bench.round(advance_s=5)
    [failed] = (await bench.get(who, f"/v1/endpoints/{endpoint['id']}/deliveries"))["data"]
    assert (failed["status"], failed["attempts"], failed["last_status"]) == ("failed", 4, 503)
    assert failed["manual"] is False
    assert len(bench.receiver.at("/down")) == 4

    bench.receiver.script["/down"] = [200]  # the subscriber fixes its receiver
    response = await bench.post(who, f"/v1/endpoints/{endpoint['id']}/recover", {"since": since})

    assert response.status_code == 202, response.text
    assert response.json()["count"] == 1
    [queued] = response.json()["deliveries"]
    assert queued["id"] != failed["id"]
    assert (queued["event_id"], queued["endpoint_id"]) == (event.id, endpoint["id"])
    assert (queued["status"], queued["attempts"], queued["manual"]) == ("pending", 0, True)

    assert await bench.round() == 1

    received = bench.receiver.at("/down")
    assert len(received) == 5
    got = received[-1]
    assert got.headers["webhook-id"] == event.id
    assert {r.headers["webhook-id"] for r in received} == {event.id}
    assert got.body == event.payload.encode()
    assert Webhook(endpoint["secret"]).verify(got.body, got.headers) == json.loads(event.payload)

    history = (await bench.get(who, f"/v1/events/{event.id}/deliveries"))["data"]
    assert [(d["id"], d["status"], d["manual"]) for d in history] == [
        (queued["id"], "delivered", True),
        (failed["id"], "failed", False),
    ]
    [attempt] = (await bench.get(who, f"/v1/deliveries/{queued['id']}/attempts"))["data"]
    assert (attempt["number"], attempt["status_code"], attempt["manual"]) == (1, 200, True)
    assert attempt["error"] is None
    old = (await bench.get(who, f"/v1/deliveries/{failed['id']}/attempts"))["data"]
    assert [(a["number"], a["status_code"], a["manual"]) for a in old] == [
        (n, 503, False) for n in (1, 2, 3, 4)
    ]
    # recovered once: a second recovery finds nothing left to send
    again = await bench.post(who, f"/v1/endpoints/{endpoint['id']}/recover", {"since": since})
    assert again.status_code == 202, again.text
    assert again.json() == {"count": 0, "deliveries": []}


async def test_a_replay_to_one_endpoint_reaches_only_that_one(bench: Bench) -> None:
    bench.realtime()
    who = await bench.caller()
    one = await bench.endpoint(who, "/one")
    await bench.endpoint(who, "/two")
    event = await bench.event(who)
    await bench.round()
    assert len(bench.receiver.at("/one")) == len(bench.receiver.at("/two")) == 1

    response = await bench.post(who, f"/v1/events/{event.id}/replay", {"endpoint_id": one["id"]})

    assert response.status_code == 202, response.text
    [queued] = response.json()["deliveries"]
    assert response.json()["event_id"] == event.id
    assert (queued["endpoint_id"], queued["manual"]) == (one["id"], True)
    assert await bench.round() == 1
    assert len(bench.receiver.at("/two")) == 1
    first, second = bench.receiver.at("/one")
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == event.id
    assert second.body == first.body
    Webhook(one["secret"]).verify(second.body, second.headers)
    [attempt] = (await bench.get(who, f"/v1/deliveries/{queued['id']}/attempts"))["data"]
    assert attempt["manual"] is True
    assert attempt["status_code"] == 200


async def test_a_replay_is_signed_with_the_secret_live_at_sending(bench: Bench) -> None:
    bench.realtime()
    who = await bench.caller()
    endpoint = await bench.endpoint(who, "/rot")
    event = await bench.event(who)
    await bench.round()
    rotated = await bench.post(who, f"/v1/endpoints/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text

    await bench.post(who, f"/v1/events/{event.id}/replay")
    await bench.round()

    got = bench.receiver.at("/rot")[-1]
    assert got.headers["webhook-id"] == event.id
    for secret in (rotated.json()["secret"], endpoint["secret"]):  # during the overlap
        Webhook(secret).verify(got.body, got.headers)
