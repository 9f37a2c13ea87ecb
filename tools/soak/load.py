"""The task load: a steady stream of submissions across the accounts, every simulator tag in
the mix, each with an ``Idempotency-Key``, retried with that same key when ``web`` did not
answer (it was killed) — which is exactly the case idempotency keys exist for.

Every answer is kept. A submission is *accepted* once any attempt answered 202 with a task;
from then on the service owes that task a terminal status, a balanced ledger and its events.
A few accepted submissions are sent once more on purpose: the same body must return the same
task (``Idempotent-Replayed``), another body must be refused (409); and a few are sent twice at
once, as a double click would, and must still make one task.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tools.soak.accounts import Account
from tools.soak.api import Answer, Api
from tools.soak.report import Figure

#: simulator tags, alone and combined, with weights; "fail" anywhere means the task must fail
TAGS: list[tuple[str, int]] = [
    ("", 26), ("[sim:fail]", 9), ("[sim:duplicate]", 8), ("[sim:reorder]", 8), ("[sim:drop]", 8),
    ("[sim:delay=2]", 5), ("[sim:delay=0.5]", 3), ("[sim:busy]", 6),
    ("[sim:fail] [sim:duplicate]", 4), ("[sim:reorder] [sim:fail]", 4),
    ("[sim:drop] [sim:fail]", 4), ("[sim:busy] [sim:fail]", 3),
    ("[sim:duplicate] [sim:reorder]", 4), ("[sim:delay=1] [sim:drop]", 3),
    ("[SIM:Duplicate] [sim:busy]", 2),
]  # fmt: skip
SUBJECTS = [
    "a paper boat on a misty pond, golden hour", "a lighthouse in a storm, oil painting",
    "a red fox asleep in snow", "isometric city block at night, neon", "a bowl of ramen, macro",
    "an old map of an imaginary island", "a hummingbird over a cactus flower",
    "a cozy reading nook with rain on the window", "a robot watering tomato plants",
]  # fmt: skip
MODELS = ["nano-banana-fast", "nano-banana", "nano-banana-pro", "nano-banana-2"]


@dataclass
class Submission:
    n: int
    account: Account
    idem_key: str
    body: dict[str, Any]
    #: the terminal status the tags call for
    expect: str
    answers: list[str] = field(default_factory=list)
    task_id: str | None = None
    cost: int | None = None
    #: a final refusal (402 when the account ran dry), not an acceptance
    refused: int | None = None


@dataclass
class Load:
    api: Api
    accounts: list[Account]
    rng: random.Random
    submissions: list[Submission] = field(default_factory=list)
    #: answers to the deliberate re-sends, by kind and whether they were right
    resends: Counter[str] = field(default_factory=Counter)
    #: answers a valid submission must never get (a 5xx other than a busy 503, a 4xx but 402)
    wrong: list[str] = field(default_factory=list)
    _running: set[asyncio.Task[None]] = field(default_factory=set)

    def _body(self, n: int) -> tuple[dict[str, Any], str]:
        kinds, weights = zip(*TAGS, strict=True)
        tags = self.rng.choices(kinds, weights)[0]
        body: dict[str, Any] = {
            "prompt": f"{self.rng.choice(SUBJECTS)} #{n} {tags}".strip(),
            "model": self.rng.choice(MODELS),
            "resolution": self.rng.choice(["1k", "1k", "2k", "4k"]),
            "aspect_ratio": self.rng.choice(["1:1", "16:9", "3:2", "9:16", "auto"]),
            "output_format": self.rng.choice(["png", "jpeg"]),
            "num_images": self.rng.choice([1, 1, 1, 2]),
            "metadata": {"soak": n},
        }
        if self.rng.random() < 0.3:
            body["seed"] = self.rng.randrange(2**31)
        if self.rng.random() < 0.1:  # an edit; the simulator never fetches its input
            body["images"] = ["http://127.0.0.1:9/input.png"]
        return body, ("failed" if "fail" in tags.lower() else "succeeded")

    async def run(self, seconds: float, rate: float, settle_s: float) -> None:
        """Submit ``rate`` tasks a second for ``seconds``; then wait (at most ``settle_s``) for
        submissions still retrying."""
        started = time.monotonic()
        weights = [a.weight for a in self.accounts]
        n = 0
        while (now := time.monotonic()) < started + seconds:
            due = started + n / rate
            if due > now:
                await asyncio.sleep(due - now)
            account = self.rng.choices(self.accounts, weights)[0]
            body, expect = self._body(n)
            sub = Submission(n, account, f"soak-{n}-{self.rng.getrandbits(32):08x}", body, expect)
            self.submissions.append(sub)
            task = asyncio.create_task(self._submit(sub, deadline=started + seconds + settle_s))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            n += 1
        if self._running:
            await asyncio.wait(list(self._running))

    async def _post(self, sub: Submission, body: dict[str, Any]) -> Answer:
        headers = {"Idempotency-Key": sub.idem_key}
        return await self.api.call(
            "POST", "/v1/tasks", key=sub.account.key, body=body, headers=headers
        )

    async def _submit(self, sub: Submission, deadline: float) -> None:
        twin = self.rng.random() < 0.05
        while True:
            if twin:
                answer = await self._twins(sub)
                twin = False
            else:
                answer = await self._post(sub, sub.body)
            sub.answers.append(_label(answer))
            if answer.status == 202:
                sub.task_id, sub.cost = answer.field("id"), answer.field("cost_credits")
                break
            if answer.status == 402:
                sub.refused = 402
                return
            if answer.status is not None and answer.status not in (429, 503):
                self.wrong.append(f"submission {sub.idem_key}: {answer.status} {answer.body}")
                return
            if time.monotonic() > deadline:
                return  # never answered: whether it was accepted, the database will say
            retry_after = (answer.headers or {}).get("retry-after", "")
            wait = float(retry_after) if retry_after.isdigit() else self.rng.uniform(0.3, 1.0)
            await asyncio.sleep(wait)
        roll = self.rng.random()
        if roll < 0.10:
            await self._resend_same(sub)
        elif roll < 0.13:
            await self._resend_other(sub)

    async def _twins(self, sub: Submission) -> Answer:
        """The same request twice at once: both answers, if any, name the same task."""
        first, second = await asyncio.gather(self._post(sub, sub.body), self._post(sub, sub.body))
        ids = {a.field("id") for a in (first, second) if a.status == 202}
        if len(ids) > 1:
            self.wrong.append(f"twin submissions of {sub.idem_key} made tasks {sorted(ids)}")
        answers = sorted(str(a.status or "no answer") for a in (first, second))
        self.resends[
            "concurrent twins: " + ("one task" if len(ids) == 1 else "/".join(answers))
        ] += 1
        return first if first.status == 202 or second.status != 202 else second

    async def _resend_same(self, sub: Submission) -> None:
        """The same key and body again: the same task, marked as a replay."""
        answer = await self._post(sub, sub.body)
        if answer.status is None:
            self.resends["same body: no answer"] += 1
            return
        same = answer.status == 202 and answer.field("id") == sub.task_id
        marked = (answer.headers or {}).get("idempotent-replayed") == "true"
        self.resends["same body: same task" if same and marked else "same body: WRONG"] += 1
        if not (same and marked):
            self.wrong.append(f"re-send of {sub.idem_key}: {answer.status} {answer.body}")

    async def _resend_other(self, sub: Submission) -> None:
        """The same key with another body: an idempotency conflict, nothing created."""
        other = {**sub.body, "metadata": {"soak": sub.n, "changed": True}}
        answer = await self._post(sub, other)
        if answer.status is None:
            self.resends["other body: no answer"] += 1
            return
        right = answer.status == 409
        self.resends["other body: 409" if right else "other body: WRONG"] += 1
        if not right:
            self.wrong.append(f"conflicting re-send of {sub.idem_key}: {answer.status}")

    @property
    def accepted(self) -> list[Submission]:
        return [s for s in self.submissions if s.task_id is not None]

    def figures(self) -> dict[str, Figure]:
        answers = Counter(a for s in self.submissions for a in s.answers)
        return {
            "submitted": len(self.submissions),
            "accepted": len(self.accepted),
            "refused 402": sum(1 for s in self.submissions if s.refused == 402),
            "never answered": sum(
                1 for s in self.submissions if s.task_id is None and s.refused is None
            ),
            "retried after no answer": sum(1 for s in self.submissions if "no answer" in s.answers),
            **{f"answers {k}": v for k, v in sorted(answers.items())},
            **{f"re-send {k}": v for k, v in sorted(self.resends.items())},
        }


def _label(answer: Answer) -> str:
    """How an answer is counted: its status, and for a 429 which limit it was."""
    if answer.status is None:
        return "no answer"
    return f"429 {answer.code}" if answer.status == 429 else str(answer.status)
