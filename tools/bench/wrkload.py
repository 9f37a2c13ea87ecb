"""The closed-loop load generator when ``wrk`` is on PATH (C, so the client is never the limit).

Each callback must be sent once (a repeat is a ``duplicate``, not an applied transition), so
the prepared requests are written out as raw HTTP/1.1, one file per wrk thread, and a Lua script
hands each thread's requests out in order. If a thread runs out it stops (``wrk.thread:stop``)
or, on a wrk without it, starts again from its first request — which the ingest scenario's
database check then reports, as it would any double count.

wrk only does closed loops; the open-loop latency scenario always uses the Python client.
Not exercised in this repository's CI (wrk is not installed there): ``load.closed_loop`` is.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tools.bench.load import LoadResult, Request

WRK = shutil.which("wrk")

_SCRIPT = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  local dir, count = args[1], tonumber(args[2])
  local part = tostring(tid % count)
  local f = assert(io.open(dir .. "/requests." .. part, "rb"))
  local data = f:read("*a")
  f:close()
  reqs, nexti = {}, 0
  local pos = 1
  for len in io.lines(dir .. "/lengths." .. part) do
    local n = tonumber(len)
    reqs[#reqs + 1] = data:sub(pos, pos + n - 1)
    pos = pos + n
  end
end
function request()
  nexti = nexti + 1
  if reqs[nexti] == nil then
    if wrk.thread ~= nil and wrk.thread.stop ~= nil then wrk.thread:stop() end
    nexti = 1
  end
  return reqs[nexti]
end
function done(summary, latency, requests)
  io.write(string.format(
    '\n{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d,'
    .. ' "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _raw(host: str, req: Request) -> bytes:
    head = [f"POST {req.path} HTTP/1.1", f"Host: {host}"]
    head += [f"{name}: {value}" for name, value in req.headers.items()]
    head.append(f"Content-Length: {len(req.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + req.body


def _write(dir_: Path, host: str, requests: Sequence[Request], threads: int) -> None:
    (dir_ / "script.lua").write_text(_SCRIPT)
    for part in range(threads):
        raws = [_raw(host, r) for r in requests[part::threads]]
        (dir_ / f"requests.{part}").write_bytes(b"".join(raws))
        (dir_ / f"lengths.{part}").write_text("".join(f"{len(r)}\n" for r in raws))


async def closed_loop_wrk(
    base: str, requests: Sequence[Request], *, concurrency: int, duration_s: float, threads: int
) -> LoadResult:
    """``load.closed_loop`` with wrk: ``concurrency`` connections over ``threads`` threads."""
    if WRK is None:
        raise RuntimeError("wrk is not on PATH")
    host = base.removeprefix("http://")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        dir_ = Path(tmp)
        _write(dir_, host, requests, threads)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.time()
        proc = await asyncio.create_subprocess_exec(
            WRK, f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s",
            "-s", str(dir_ / "script.lua"), base, "--", str(dir_), str(threads),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, _ = await proc.communicate()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stdout.decode()[-2000:]}")
    line = [raw for raw in stdout.decode().splitlines() if raw.startswith("{")][-1]
    found = json.loads(line)
    result = LoadResult()
    result.sent = found["requests"]
    result.ok = found["requests"] - found["status"]
    result.statuses[200] = result.ok
    if found["status"]:
        result.statuses[0] = found["status"]  # wrk counts non-2xx/3xx without saying which
    for kind in ("connect", "read", "write", "timeout"):
        if found[kind]:
            result.errors[kind] = found[kind]
    result.elapsed_s = found["duration_us"] / 1e6
    result.started_wall, result.finished_wall = started, started + result.elapsed_s
    result.exhausted = result.sent > len(requests)
    result.cut_off = concurrency
    result.percentiles = {50: found["p50_us"] / 1000, 99: found["p99_us"] / 1000}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result.client_cpu = cpu / max(result.elapsed_s, 1e-9)
    return result
