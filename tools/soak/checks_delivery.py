"""End checks on the downstream side: every event reached every endpoint it was owed to.

"Owed" is worked out twice, independently: from the fan-out rule (an event goes to each enabled
endpoint of its account subscribed to its type, created before it) and from the deliveries
table. An endpoint that is enabled at the end (never disabled by a 410, never deleted) is held
to "delivered at least once", as seen by its receiver: a copy it answered 2xx, whose signature
the ``standardwebhooks`` package verified with that endpoint's secret, whose body is the event's
stored payload and whose ``webhook-id`` is the event's id. Duplicates are allowed (delivery is
at least once) and counted; losses are not.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from service.settings import DeliverySettings
from tools.soak.accounts import Account
from tools.soak.db import Row, Snapshot
from tools.soak.receivers import Receiver
from tools.soak.report import Check

#: an event this close to its endpoint's creation may or may not have seen it (the two
#: transactions raced for the write lock); such pairs are owed only if a delivery row says so
RACE_MS = 10_000
#: after a rotation, copies must carry both signatures (old and new) once claims made before it
#: are through: a lease and a request timeout
ROTATION_S = 15
#: slack for "overdue" and "past its lease": a worker round and a restart
GRACE_MS = 15_000


def _subscribes(endpoint: Row, event_type: str) -> bool:
    if event_type == "ping":
        return False
    types = endpoint["event_types"]
    return types is None or event_type in json.loads(types)


def _healthy(endpoint: Row) -> bool:
    return bool(endpoint["enabled"]) and endpoint["deleted_at"] is None


def every_event_delivered(snap: Snapshot, accounts: list[Account]) -> Check:
    check = Check("every event reached every endpoint healthy at the end, signed and intact")
    endpoints = snap.by_id("endpoints")
    events = snap.by_id("events")
    receivers: dict[str, Receiver] = {
        r.endpoint_id: r for a in accounts for r in a.receivers if r.endpoint_id is not None
    }
    rows: set[tuple[str, str]] = set()
    for d in snap.deliveries:
        rows.add((d["event_id"], d["endpoint_id"]))
        event, endpoint = events[d["event_id"]], endpoints[d["endpoint_id"]]
        check.expect(
            d["account_id"] == event["account_id"] == endpoint["account_id"],
            f"{d['id']}: delivery of {event['id']} crosses accounts to {endpoint['id']}",
        )
    owed: set[tuple[str, str]] = set()
    raced = 0
    for endpoint in endpoints.values():
        if not _healthy(endpoint):
            continue
        for event in snap.events:
            if event["account_id"] != endpoint["account_id"]:
                continue
            if (
                not _subscribes(endpoint, event["type"])
                or event["created_at"] < endpoint["created_at"]
            ):
                continue
            pair = (event["id"], endpoint["id"])
            if event["created_at"] - endpoint["created_at"] < RACE_MS and pair not in rows:
                raced += 1
                continue
            owed.add(pair)
            check.expect(pair in rows, f"{pair}: owed by the fan-out rule, no delivery row")
    owed |= {pair for pair in rows if _healthy(endpoints[pair[1]])}

    accepted: Counter[tuple[str, str]] = Counter()
    copies = refused = unverified = rotated = 0
    for endpoint_id, receiver in receivers.items():
        for copy in receiver.copies:
            copies += 1
            found = events.get(copy.webhook_id)
            pair = (copy.webhook_id, endpoint_id)
            if found is None or found["account_id"] != endpoints[endpoint_id]["account_id"]:
                check.problems.append(f"{receiver.name}: got {copy.webhook_id!r}, not its event")
                continue
            payload_sha = hashlib.sha256(found["payload"].encode()).hexdigest()
            if not copy.verified_by:
                unverified += 1
                check.problems.append(f"{pair}: a copy failed standardwebhooks verification")
            elif len(receiver.secrets) > 1 and copy.at > receiver.secrets[-1][1] + ROTATION_S:
                both = set(copy.verified_by) == set(range(len(receiver.secrets)))
                rotated += 1
                check.expect(both, f"{pair}: signed by secrets {copy.verified_by} after rotation")
            check.expect(copy.body_sha256 == payload_sha, f"{pair}: body is not the event's")
            check.expect(pair in rows, f"{pair}: arrived without a delivery row")
            if copy.accepted:
                accepted[pair] += 1
            else:
                refused += 1
    lost = sorted(pair for pair in owed if not accepted[pair])
    for event_id, endpoint_id in lost:
        target = receivers.get(endpoint_id)
        state = [
            (d["status"], d["attempts"], d["last_status"], d["last_error"])
            for d in snap.deliveries
            if d["event_id"] == event_id and d["endpoint_id"] == endpoint_id
        ]
        name = target.name if target else endpoint_id
        check.problems.append(f"LOST {events[event_id]['type']} {event_id} → {name}: {state}")
    excused = sum(1 for pair in rows if not _healthy(endpoints[pair[1]]))
    check.figures |= {
        "events": len(events),
        "events by type": ", ".join(
            f"{t} {n}" for t, n in sorted(Counter(e["type"] for e in snap.events).items())
        ),
        "deliveries (rows)": len(snap.deliveries),
        "manual deliveries (replay, recover)": sum(1 for d in snap.deliveries if d["manual"]),
        "(event, endpoint) pairs owed to healthy endpoints": len(owed),
        "pairs to disabled or deleted endpoints (excused)": excused,
        "pairs whose event raced its endpoint's creation": raced,
        "copies received": copies,
        "copies refused by a faulty receiver": refused,
        "copies failing verification": unverified,
        "copies verified with both secrets after a rotation": rotated,
        "copies accepted": sum(accepted.values()),
        "duplicates (accepted copies beyond the first)": sum(n - 1 for n in accepted.values() if n),
        "losses": len(lost),
    }
    return check


def endpoints_intact(snap: Snapshot, accounts: list[Account]) -> Check:
    """Garbage changed no endpoint: each is as registered, none deleted (the soak deletes
    none), and only a receiver that answered 410 was disabled."""
    check = Check("every endpoint as registered; only those that answered 410 disabled")
    endpoints = snap.by_id("endpoints")
    mine = {r.endpoint_id: r for a in accounts for r in a.receivers if r.endpoint_id}
    check.expect(set(endpoints) == set(mine), f"endpoints {sorted(set(endpoints) ^ set(mine))}")
    for endpoint_id, receiver in mine.items():
        row = endpoints.get(endpoint_id)
        if row is None:
            continue
        types = None if row["event_types"] is None else json.loads(row["event_types"])
        check.expect(row["url"] == receiver.url, f"{receiver.name}: url now {row['url']}")
        check.expect(types == receiver.event_types, f"{receiver.name}: event types now {types}")
        check.expect(row["deleted_at"] is None, f"{receiver.name}: deleted")
        if not row["enabled"]:
            check.expect(
                receiver.is_gone and "410" in (row["disabled_reason"] or ""),
                f"{receiver.name}: disabled ({row['disabled_reason']}) though it never said 410",
            )
    check.figures["endpoints"] = len(endpoints)
    check.figures["endpoints disabled by a 410"] = sum(
        1 for e in endpoints.values() if not e["enabled"]
    )
    return check


def delivery_table_sound(snap: Snapshot, settings: DeliverySettings) -> Check:
    """Nothing stuck: no lease left past its time, nothing pending past when it was due, no
    delivery given up before its schedule was used up, and every attempt on record."""
    check = Check("no delivery stuck, overdue, or given up early; attempts all on record")
    endpoints = snap.by_id("endpoints")
    now = snap.now_ms
    schedule = settings.schedule_seconds
    # the longest a delivery may live: every wait at its longest, every attempt timing out,
    # a lease lost to a kill per attempt, and the Retry-After our receivers ask for (≤ 3 s)
    longest_ms = 1000 * (
        sum(schedule) * (1 + settings.jitter_fraction)
        + len(schedule) * (settings.request_timeout_seconds + settings.lease_seconds + 3)
    )
    statuses: Counter[str] = Counter()
    for d in snap.deliveries:
        statuses[d["status"]] += 1
        attempts = snap.attempts_by_delivery.get(d["id"], [])
        numbers = [a["number"] for a in attempts]
        check.expect(
            numbers == list(range(1, d["attempts"] + 1)),
            f"{d['id']}: {d['attempts']} attempts counted, numbers on record {numbers}",
        )
        if d["status"] == "delivered":
            code = attempts[-1]["status_code"] if attempts else None
            check.expect(code is not None and 200 <= code < 300, f"{d['id']}: delivered on {code}")
        elif d["status"] == "pending":
            lease = d["lease_until"]
            if lease is not None:
                check.expect(
                    lease + GRACE_MS > now, f"{d['id']}: claimed {now - lease} ms past its lease"
                )
                check.expect(
                    lease - now < settings.lease_seconds * 1000 + GRACE_MS,
                    f"{d['id']}: leased for {lease - now} ms more, the lease is"
                    f" {settings.lease_seconds} s",
                )
            else:
                due = d["next_attempt_at"]
                check.expect(due + GRACE_MS > now, f"{d['id']}: pending, due {now - due} ms ago")
            check.expect(
                now - d["created_at"] < longest_ms + GRACE_MS,
                f"{d['id']}: pending for {now - d['created_at']} ms, the schedule allows"
                f" {longest_ms:.0f}",
            )
        elif _healthy(endpoints[d["endpoint_id"]]):
            check.expect(
                d["attempts"] == len(schedule),
                f"{d['id']}: failed after {d['attempts']} of {len(schedule)} attempts"
                f" ({d['last_error']}) though its endpoint is enabled",
            )
    check.figures |= {
        **{f"deliveries {s}": n for s, n in sorted(statuses.items())},
        "attempts": len(snap.attempts),
        "attempts answered 2xx": sum(
            1 for a in snap.attempts if a["status_code"] and 200 <= a["status_code"] < 300
        ),
    }
    return check
