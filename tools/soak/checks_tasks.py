"""End checks on the upstream side: tasks, their ledgers, credits, and provider callbacks.

"No accepted task is lost" is judged from both ends: every task a client was told about (a
202) exists, and every task in the database came from a submission the soak made (garbage
created none). "Legal" is judged by the service's own pure ledger (``service.core.ledger``):
replaying each task's applied timeline entries through ``apply`` must reproduce every recorded
state, one sequence number at a time, so the soak cannot disagree with the service about the
rules, only about whether it followed them.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter

from service.core.ledger import Change, Failure, Outcome, Result, TaskStatus, apply, initial_state
from service.settings import UpstreamSettings
from tools.soak.accounts import Account
from tools.soak.api import BUSY_OR_DOWN, Api
from tools.soak.checks_assets import lost_image
from tools.soak.db import Row, Snapshot
from tools.soak.forgery import Forgery
from tools.soak.ingress import Ingress
from tools.soak.load import Load
from tools.soak.report import Check

#: slack for "overdue": a worker round, a restart
GRACE_MS = 15_000
_RESULT = (Result("http://soak/x.png", "image/png", 1, 1),)
_FAILURE = Failure("soak", "replayed by the soak")


def _waiting(task: Row, now_ms: int, settings: UpstreamSettings) -> bool:
    """Not finished, and legitimately so: a worker holds it under a lease no longer than the
    configured one, or its next check is not overdue; and it is younger than the give-up time
    allows."""
    due, lease = task["next_check_at"], task["lease_until"]
    lease_ms = settings.lease_seconds * 1000
    oldest = 1000 * (
        settings.give_up_seconds + settings.lease_seconds + settings.poll_interval_seconds
    )
    if lease is not None and lease > now_ms - GRACE_MS:
        looked_after: bool = lease < now_ms + lease_ms + GRACE_MS
    else:
        looked_after = due is not None and due + GRACE_MS > now_ms
    return looked_after and now_ms - task["created_at"] < oldest + GRACE_MS


def tasks_accounted(
    snap: Snapshot, load: Load, settings: UpstreamSettings, image_faults: float
) -> Check:
    """Every acknowledged task exists; every stored task was submitted by the soak, once per
    Idempotency-Key; all are terminal (or, submitted late, still legitimately in flight); and
    each ended as its simulator tags said it would — or failed ``result_unavailable`` on an
    image the simulator never serves (``checks_assets.lost_image``)."""
    check = Check("every accepted task is accounted for and finished")
    tasks = snap.by_id("tasks")
    by_key = {(r["account_id"], r["key"]): r["task_id"] for r in snap.idempotency}
    subs = {(s.account.id, s.idem_key): s for s in load.submissions}
    for sub in load.accepted:
        row = tasks.get(sub.task_id or "")
        check.expect(row is not None, f"{sub.task_id}: acknowledged (202) but not stored")
        if row is not None:
            check.expect(row["account_id"] == sub.account.id, f"{sub.task_id}: wrong account")
            check.expect(row["cost_credits"] == sub.cost, f"{sub.task_id}: cost changed")
        stored = by_key.get((sub.account.id, sub.idem_key))
        check.expect(stored == sub.task_id, f"{sub.idem_key}: key maps to {stored}")
    unacknowledged = 0
    keyed = set(by_key.values())
    for task_id in tasks:
        check.expect(task_id in keyed, f"{task_id}: a task no submission of the soak made")
    for (account_id, key), task_id in by_key.items():
        owner = subs.get((account_id, key))
        check.expect(owner is not None, f"{task_id}: idempotency key {key!r} is not the soak's")
        if owner is not None and owner.task_id is None:
            unacknowledged += 1  # accepted while web died; the client never heard back
            owner.task_id = task_id
    statuses: Counter[str] = Counter()
    waiting = 0
    for task_id, row in tasks.items():
        statuses[row["status"]] += 1
        if row["status"] in ("succeeded", "failed"):
            continue
        if _waiting(row, snap.now_ms, settings):
            waiting += 1
            continue
        check.problems.append(
            f"{task_id}: still {row['status']} (created {snap.now_ms - row['created_at']} ms"
            f" before the end, next check {row['next_check_at']}, lease {row['lease_until']})"
        )
    mismatched: Counter[str] = Counter()
    for sub in load.submissions:
        row = tasks.get(sub.task_id or "")
        if row is None or row["status"] not in ("succeeded", "failed"):
            continue
        if row["status"] != sub.expect and not lost_image(row, image_faults):
            mismatched[f"{sub.expect} → {row['status']} ({row['failure_code']})"] += 1
            check.problems.append(
                f"{row['id']}: tags {sub.body['prompt'].split('#')[-1]!r} should have"
                f" {sub.expect}, but {row['status']} ({row['failure_code']}:"
                f" {row['failure_message']})"
            )
    check.figures |= {
        "tasks stored": len(tasks),
        **{f"tasks {status}": n for status, n in sorted(statuses.items())},
        "still in flight (submitted late)": waiting,
        "accepted but never acknowledged": unacknowledged,
    }
    for what, n in mismatched.items():
        check.figures[f"outcome {what}"] = n
    return check


def ledgers_legal(snap: Snapshot) -> Check:
    """Each task's timeline, judged by ``service.core.ledger.apply``; events match it."""
    check = Check("every task's ledger is legal (service.core.ledger) and its events match")
    entries = 0
    inversions = 0
    for task in snap.tasks:
        timeline = snap.timeline_by_task.get(task["id"], [])
        entries += len(timeline)
        applied = sorted((e for e in timeline if e["outcome"] == "applied"), key=_seq)
        by_id_order = [e["sequence"] for e in timeline if e["outcome"] == "applied"]
        inversions += sum(1 for a, b in itertools.pairwise(by_id_order) if a > b)
        check.problems.extend(_judge(task, applied, timeline))
        check.problems.extend(_events_match(task, applied, snap.events_by_task.get(task["id"], [])))
    check.figures |= {
        "timeline entries": entries,
        "tasks judged": len(snap.tasks),
        "applied entries listed out of sequence order": inversions,
    }
    return check


def _seq(entry: Row) -> int:
    return int(entry["sequence"])


def _judge(task: Row, applied: list[Row], timeline: list[Row]) -> list[str]:
    tid = task["id"]
    if not applied:
        return [f"{tid}: no applied timeline entry at all"]
    first = applied[0]
    if (first["source"], first["status"], first["sequence"], first["progress"]) != (
        "api", "queued", 1, 0,
    ):  # fmt: skip
        return [f"{tid}: does not start queued at sequence 1 from the api: {first}"]
    state = initial_state(first["created_at"])
    states = {(state.status.value, state.progress, state.sequence)}
    for entry in applied[1:]:
        status = TaskStatus(entry["status"])
        change = Change(
            status,
            progress=entry["progress"],
            results=_RESULT if status is TaskStatus.SUCCEEDED else (),
            failure=_FAILURE if status is TaskStatus.FAILED else None,
        )
        moved = apply(state, change, entry["created_at"])
        got = (moved.state.status.value, moved.state.progress, moved.state.sequence)
        want = (entry["status"], entry["progress"], entry["sequence"])
        if moved.outcome is not Outcome.APPLIED or got != want:
            return [
                f"{tid}: illegal step {state.status}/{state.progress}/#{state.sequence} →"
                f" {want} ({moved.outcome}: {moved.reason}) by {entry['source']} {entry['id']}"
            ]
        state = moved.state
        states.add(got)
    problems = []
    final = (task["status"], task["progress"], task["sequence"])
    if final != (state.status.value, state.progress, state.sequence):
        problems.append(f"{tid}: stored state {final} is not where its ledger ends")
    for entry in timeline:
        at = (entry["status"], entry["progress"], entry["sequence"])
        if entry["outcome"] != "applied" and at not in states:
            problems.append(f"{tid}: {entry['outcome']} entry {entry['id']} records {at}")
    terminal = task["status"] in ("succeeded", "failed")
    if terminal != (task["completed_at"] is not None):
        problems.append(f"{tid}: completed_at is {task['completed_at']} while {task['status']}")
    if (task["status"] == "succeeded") != (json.loads(task["results"]) != []):
        problems.append(f"{tid}: {task['status']} with results {task['results'][:100]}")
    if (task["status"] == "failed") != (task["failure_code"] is not None):
        problems.append(f"{tid}: {task['status']} with failure {task['failure_code']}")
    return problems


def _events_match(task: Row, applied: list[Row], events: list[Row]) -> list[str]:
    """One ``task.<status>`` event per status change, carrying that change's sequence."""
    want: list[tuple[str, int]] = []
    previous = None
    for entry in applied:
        if entry["status"] != previous:
            want.append((f"task.{entry['status']}", entry["sequence"]))
        previous = entry["status"]
    got = []
    problems = []
    for event in events:
        data = json.loads(event["payload"])["data"] if event["payload"] else {}
        got.append((event["type"], data.get("sequence", -1)))
        if (data.get("id"), f"task.{data.get('status')}") != (task["id"], event["type"]):
            problems.append(f"{event['id']}: a {event['type']} carrying {str(data)[:120]}")
        if event["account_id"] != task["account_id"]:
            problems.append(f"{event['id']}: in another account than its task {task['id']}")
    if sorted(got) != sorted(want):
        problems.append(f"{task['id']}: events {sorted(got)} but status changes {sorted(want)}")
    return problems


async def credits_balance(snap: Snapshot, api: Api, accounts: list[Account]) -> Check:
    """Per account, the API's balance and ledger agree with grants - charges + refunds; per task
    one charge of its cost, one full refund if and only if it failed."""
    check = Check("credits balance: grants - charges + refunds, refunds exactly once")
    tasks = snap.by_id("tasks")
    for account in accounts:
        mine = [e for e in snap.credits if e["account_id"] == account.id]
        grants = sum(e["delta"] for e in mine if e["kind"] == "grant")
        charges = -sum(e["delta"] for e in mine if e["kind"] == "charge")
        refunds = sum(e["delta"] for e in mine if e["kind"] == "refund")
        answer = await api.settled("GET", "/v1/account", retry_on=BUSY_OR_DOWN, key=account.key)
        balance = answer.field("balance_credits")
        listed = await api.pages("/v1/account/ledger", account.key)
        check.figures[f"{account.name} balance"] = (
            f"{balance} = {grants} granted - {charges} charged + {refunds} refunded"
        )
        check.expect(balance == grants - charges + refunds, f"{account.name}: balance {balance}")
        check.expect(balance is not None and balance >= 0, f"{account.name}: negative balance")
        check.expect(
            sorted(e["id"] for e in listed) == sorted(e["id"] for e in mine),
            f"{account.name}: /v1/account/ledger lists other entries than the database holds",
        )
        check.expect(sum(e["delta"] for e in listed) == balance, f"{account.name}: ledger sum")
    refunded = 0
    for task_id, task in tasks.items():
        entries = snap.credits_by_task.get(task_id, [])
        charged = [e["delta"] for e in entries if e["kind"] == "charge"]
        refunds = [e["delta"] for e in entries if e["kind"] == "refund"]
        refunded += len(refunds)
        check.expect(charged == [-task["cost_credits"]], f"{task_id}: charges {charged}")
        if task["status"] == "failed":
            check.expect(refunds == [task["cost_credits"]], f"{task_id}: failed, refunds {refunds}")
        else:
            check.expect(not refunds, f"{task_id}: {task['status']} but refunded {refunds}")
        check.expect(task["refunded_credits"] == sum(refunds), f"{task_id}: refunded_credits")
        check.expect(
            all(e["account_id"] == task["account_id"] for e in entries),
            f"{task_id}: a credit entry in another account",
        )
    check.figures["tasks refunded"] = refunded
    return check


def callbacks_sound(snap: Snapshot, ingress: Ingress, forgery: Forgery) -> Check:
    """Only verified callbacks moved tasks, each at most once; every forgery that got past the
    token is in the log as rejected and changed nothing."""
    check = Check("no forged or replayed callback changed anything")
    tasks = snap.by_id("tasks")
    outcomes: Counter[str] = Counter()
    replayed = 0
    for task_id, records in snap.callbacks_by_task.items():
        task = tasks[task_id]
        applied = [r for r in records if r["outcome"] == "applied"]
        for record in records:
            outcomes[f"{record['verdict']} {record['outcome']}"] += 1
            if record["verdict"] == "verified":  # (one that named no task yet set the name)
                check.expect(
                    record["provider_task_id"] == task["provider_task_id"],
                    f"{record['id']}: accepted for {task_id}, but names"
                    f" {record['provider_task_id']}, not {task['provider_task_id']}",
                )
            if record["verdict"] == "rejected":
                check.expect(
                    record["outcome"] == "rejected" and record["applied_at"] is None,
                    f"{record['id']}: rejected but {record['outcome']}",
                )
        for record in applied:
            check.expect(record["verdict"] == "verified", f"{record['id']}: applied unverified")
        moves = [
            e for e in snap.timeline_by_task.get(task_id, [])
            if e["kind"] == "callback" and e["outcome"] == "applied"
        ]  # fmt: skip
        replays = [e for e in snap.timeline_by_task.get(task_id, []) if e["source"] == "replay"]
        replayed += len(replays)
        check.expect(
            all(e["outcome"] != "applied" for e in replays),
            f"{task_id}: a re-applied callback moved it again: {[e['id'] for e in replays]}",
        )
        check.expect(
            len(moves) == len(applied),
            f"{task_id}: {len(moves)} callback moves in the timeline, {len(applied)} applied",
        )
    rejected = outcomes["rejected rejected"]
    sure, maybe = forgery.logged_rejections()
    genuine = Counter("no answer" if c.status is None else str(c.status) for c in ingress.callbacks)
    low = sure + genuine["401"]
    high = low + maybe + genuine["no answer"]
    check.expect(
        low <= rejected <= high,
        f"{rejected} rejected callbacks logged; forgeries and refused genuine ones say"
        f" {low}..{high}",
    )
    check.figures |= {
        "provider callbacks through the ingress": len(ingress.callbacks),
        **{f"provider callbacks answered {k}": v for k, v in sorted(genuine.items())},
        **{f"logged {k}": v for k, v in sorted(outcomes.items())},
        "forged callbacks sent": sum(forgery.counts.values()),
        "callbacks re-applied through the API (no effect allowed)": replayed,
    }
    return check
