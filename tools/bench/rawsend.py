"""The ceiling the delivery worker is measured against: the same POSTs from a bare aiohttp loop.

It reads the pending deliveries the worker would send (same database, same bodies, same
endpoints), signs them all before the clock starts, then POSTs them with one aiohttp session
limited exactly as the worker's sender is (``concurrency`` in all, ``per_endpoint_concurrency``
per host:port), ``concurrency`` requests in flight, reading each response as the sender does.
It runs as its own process on uvloop, like ``python -m service worker``, and prints one JSON
line: how many were answered 2xx, and when the first and last answers came.

Run: ``python -m tools.bench.rawsend --db PATH --concurrency 64 --per-host 8``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter

import aiohttp
import uvloop

from service.core.delivery import Outbound, outbound
from service.core.secretbox import SecretBox
from service.store.sealing import StoredSecrets, context
from tools.bench.seed import read_only

#: one POST: the endpoint URL and the signed request
Item = tuple[str, Outbound]


def load(db: str, secret_key: str) -> list[Item]:
    """Every pending delivery, in the worker's claim order, signed now. Endpoint secrets are
    sealed at rest: ``secret_key`` (the service's ``TASKHOOK_SECRET_KEY``) opens them."""
    sealed = StoredSecrets(SecretBox.from_keys(secret_key))
    with read_only(db) as conn:
        rows = conn.execute(
            "SELECT e.id, e.payload, p.url, p.secret, p.id FROM deliveries d"
            " JOIN events e ON e.id = d.event_id JOIN endpoints p ON p.id = d.endpoint_id"
            " WHERE d.status = 'pending' ORDER BY d.next_attempt_at, d.id"
        ).fetchall()
    secrets = {
        endpoint_id: sealed.open(secret, context("endpoints", "secret", endpoint_id))
        for _e, _p, _u, secret, endpoint_id in rows
    }
    now_s = int(time.time())
    return [
        (url, outbound(event_id, payload, [secrets[endpoint_id]], now_s))
        for event_id, payload, url, _secret, endpoint_id in rows
    ]


async def send_all(items: list[Item], concurrency: int, per_host: int) -> dict[str, object]:
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    first = last = 0.0
    queue = iter(items)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=per_host)
    async with aiohttp.ClientSession(
        connector=connector, trust_env=False, auto_decompress=False
    ) as session:

        async def one_lane() -> None:
            nonlocal first, last
            for url, out in queue:
                try:
                    async with session.post(
                        url, data=out.body, headers=out.headers, allow_redirects=False
                    ) as response:
                        await response.content.read(4096)
                        statuses[response.status] += 1
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    errors[type(exc).__name__] += 1
                    continue
                last = time.time()
                first = first or last

        started, cpu0 = time.time(), time.process_time()
        await asyncio.gather(*(one_lane() for _ in range(concurrency)))
        cpu_s = time.process_time() - cpu0
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {
        "items": len(items),
        "ok": ok,
        "statuses": dict(statuses),
        "errors": dict(errors),
        "started": started,
        "first": first,
        "last": last,
        "cpu_s": cpu_s,  # this process's CPU while sending (the same work as the worker's)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--per-host", type=int, required=True)
    args = parser.parse_args()
    items = load(args.db, os.environ["BENCH_SECRET_KEY"])
    result = uvloop.run(send_all(items, args.concurrency, args.per_host))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
