"""``scripts/bench-assets [--quick] [--runs N]``: what keeping images costs, against baselines
measured in the same run.

1. **Mirroring**: N distinct 2K PNGs from a local image host (aiohttp's static files, in a
   process of its own), downloaded at concurrency C by taskhook's ``Downloader`` (SSRF guard,
   cap, magic bytes, SHA-256, Pillow's header read) and put into the ``FileAssetStore`` — versus
   a raw aiohttp loop that streams the same URLs to files at the same concurrency. MB/s,
   images/s and the ratio (goal ≥ 0.7x).
2. **Serving**: ``GET /assets/{id}`` of the real service (``python -m service serve``) on one
   2K PNG versus a bare Starlette ``FileResponse`` of the same file, both under uvicorn in a
   process of their own, loaded by the same aiohttp client. Requests/s and the ratio (goal
   ≥ 0.8x).
3. **Memory**: peak RSS growth of a process mirroring 4K images at concurrency C versus 1K
   images: what streaming keeps flat (it must not grow with image size x concurrency).

Medians over ``--runs`` runs (these machines are noisy). Writes ``.bench/assets.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


def make_images(folder: Path, count: int, side: int) -> list[Path]:
    """``count`` distinct PNGs of ``side``², noise (so they do not compress away: a 2K one is
    ~12 MB, as a photographic result is several)."""
    folder.mkdir(parents=True, exist_ok=True)
    noise = bytearray(os.urandom(side * side * 3))
    paths = []
    for index in range(count):
        noise[index * 3 : index * 3 + 3] = bytes([index % 256] * 3)  # each one distinct
        path = folder / f"img-{side}-{index}.png"
        if not path.exists():
            Image.frombytes("RGB", (side, side), bytes(noise)).save(path, compress_level=1)
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def image_host(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    code = (
        "import sys; from aiohttp import web; app = web.Application();"
        f"app.router.add_static('/', {str(folder)!r}); web.run_app(app, host='127.0.0.1',"
        f" port={port}, print=None, access_log=None)"
    )
    process = subprocess.Popen([sys.executable, "-c", code])  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/nothing")
    return process, base


async def raw_loop(urls: list[str], concurrency: int, out: Path) -> int:
    """The baseline: stream each body to a file, nothing else."""
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    gate = asyncio.Semaphore(concurrency)
    total = 0

    async def one(session: aiohttp.ClientSession, index: int, url: str) -> None:
        nonlocal total
        async with gate, session.get(url) as response:
            with (out / f"{index}.bin").open("wb") as handle:
                async for chunk in response.content.iter_chunked(256 * 1024):
                    handle.write(chunk)
                    total += len(chunk)

    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session, i, u) for i, u in enumerate(urls)))
    return total


async def taskhook_loop(urls: list[str], concurrency: int, root: Path, durable: bool = True) -> int:
    """taskhook's path: ``Downloader.fetch`` then ``FileAssetStore.put`` (fsynced when
    ``durable``: production's ``synchronous = FULL``)."""
    from service.assets.download import Downloader
    from service.assets.store import FileAssetStore
    from service.delivery.ssrf import TargetPolicy
    from service.settings import load_settings

    settings = load_settings(
        {"TASKHOOK_CONFIG": str(ROOT / "config" / "dev.toml"), "TASKHOOK_DATA_DIR": str(root),
         "TASKHOOK_SECRET_KEY": "bench-secret-key-0123456789abcdefghij",
         "TASKHOOK__ASSETS__MAX_BYTES": str(200 * MB),
         "TASKHOOK__ASSETS__CONCURRENCY": str(concurrency)}
    )  # fmt: skip
    store = FileAssetStore(root / "assets", durable=durable)
    downloader = Downloader(
        settings.assets, TargetPolicy.from_settings(["127.0.0.0/8"]), store.staging
    )
    gate = asyncio.Semaphore(concurrency)
    total = 0

    async def one(url: str) -> None:
        nonlocal total
        async with gate:
            staged = await downloader.fetch(url)
            await store.put(staged.sha256, staged.path, staged.info.content_type)
            total += staged.size

    try:
        await asyncio.gather(*(one(u) for u in urls))
    finally:
        await downloader.close()
    return total


def timed(work: Any) -> tuple[float, int]:
    started = time.perf_counter()
    size = asyncio.run(work)
    return time.perf_counter() - started, size


def mirroring(
    work_dir: Path, count: int, concurrency: int, runs: int, side: int = 2048
) -> dict[str, Any]:
    images = make_images(work_dir / "images", count, side)
    host, base = image_host(work_dir / "images")
    try:
        urls = [f"{base}/{p.name}" for p in images]
        raw_rates, ours_rates, ratios, fast_rates, fast_ratios = [], [], [], [], []
        for run in range(runs):
            raw_s, raw_bytes = timed(raw_loop(urls, concurrency, work_dir / f"raw-{run}"))
            ours_s, ours_bytes = timed(taskhook_loop(urls, concurrency, work_dir / f"ours-{run}"))
            fast_s, fast_bytes = timed(
                taskhook_loop(urls, concurrency, work_dir / f"fast-{run}", durable=False)
            )
            assert raw_bytes == ours_bytes == fast_bytes
            raw_rates.append(raw_bytes / raw_s / MB)
            ours_rates.append(ours_bytes / ours_s / MB)
            fast_rates.append(fast_bytes / fast_s / MB)
            ratios.append((ours_bytes / ours_s) / (raw_bytes / raw_s))
            fast_ratios.append((fast_bytes / fast_s) / (raw_bytes / raw_s))
        size_mb = sum(p.stat().st_size for p in images) / count / MB
        return {
            "images": count, "image_mb": round(size_mb, 2), "concurrency": concurrency,
            "raw_mb_s": statistics.median(raw_rates),
            "taskhook_mb_s": statistics.median(ours_rates),
            "taskhook_images_s": statistics.median(ours_rates) / size_mb,
            "raw_images_s": statistics.median(raw_rates) / size_mb,
            "ratio": statistics.median(ratios), "goal": 0.7,
            "no_fsync_mb_s": statistics.median(fast_rates),
            "no_fsync_ratio": statistics.median(fast_ratios),
        }  # fmt: skip
    finally:
        host.terminate()
        host.wait()


BARE_APP = """
import os
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route
PATH = os.environ["BENCH_FILE"]
async def one(request):
    return FileResponse(PATH, media_type="image/png")
app = Starlette(routes=[Route("/file", one)])
"""


async def load(url: str, seconds: float, concurrency: int) -> float:
    """Requests/s of whole-body GETs of ``url`` for ``seconds``."""
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            async with session.get(url) as response:
                assert response.status == 200, response.status
                async for _ in response.content.iter_chunked(256 * 1024):
                    pass
            done += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        started = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def serving(work_dir: Path, seconds: float, concurrency: int, runs: int) -> dict[str, Any]:
    [image] = make_images(work_dir / "serve", 1, 2048)
    data_dir = work_dir / "service"
    env = {**os.environ, "TASKHOOK_CONFIG": str(ROOT / "config" / "dev.toml"),
           "TASKHOOK_DATA_DIR": str(data_dir), "TASKHOOK_LOG_LEVEL": "error",
           "TASKHOOK_SECRET_KEY": "bench-secret-key-0123456789abcdefghij",
           "TASKHOOK__WORKERS__IN_SERVE": "false",
           "TASKHOOK__ASSETS__MAX_UPLOAD_BYTES": str(200 * MB)}  # fmt: skip
    link = asyncio.run(_keep_asset(env, image))
    ours_port, bare_port = free_port(), free_port()
    (work_dir / "bare_app.py").write_text(BARE_APP)
    ours = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "service", "serve", "--port", str(ours_port)], env=env, cwd=ROOT
    )
    bare = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port),
         "--log-level", "error", "--no-access-log"],
        env={**env, "BENCH_FILE": str(image)}, cwd=work_dir,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{ours_port}/healthz")
        wait_http(f"http://127.0.0.1:{bare_port}/file")
        ours_url = f"http://127.0.0.1:{ours_port}{link}"
        bare_url = f"http://127.0.0.1:{bare_port}/file"
        ours_rates, bare_rates, ratios = [], [], []
        for _ in range(runs):
            bare_rate = asyncio.run(load(bare_url, seconds, concurrency))
            ours_rate = asyncio.run(load(ours_url, seconds, concurrency))
            bare_rates.append(bare_rate)
            ours_rates.append(ours_rate)
            ratios.append(ours_rate / bare_rate)
        size_mb = image.stat().st_size / MB
        return {
            "image_mb": round(size_mb, 2), "concurrency": concurrency,
            "file_response_req_s": statistics.median(bare_rates),
            "taskhook_req_s": statistics.median(ours_rates),
            "taskhook_mb_s": statistics.median(ours_rates) * size_mb,
            "ratio": statistics.median(ratios), "goal": 0.8,
        }  # fmt: skip
    finally:
        for process in (ours, bare):
            process.terminate()
            process.wait()


async def _keep_asset(env: dict[str, str], image: Path) -> str:
    """Keep ``image`` in the service's store through the upload use case; its signed path."""
    from urllib.parse import urlsplit

    from service.app import open_store
    from service.assets.keeper import build_assets
    from service.assets.uploads import create_upload
    from service.core.clock import system_clock
    from service.settings import load_settings
    from service.usecases import create_account

    settings = load_settings(env)
    store = open_store(settings)
    await store.open()
    assets = build_assets(settings, system_clock)
    data = await anyio.Path(image).read_bytes()

    async def body() -> AsyncIterator[bytes]:
        yield data

    try:
        account = await create_account(store, system_clock, "bench", 0)
        asset = await create_upload(
            assets, store, system_clock, account_id=account.id, content_type="image/png",
            declared_length=len(data), body=body(),
        )  # fmt: skip
    finally:
        await assets.close()
        await store.close()
    url = urlsplit(assets.links.url(asset.id))
    return f"{url.path}?{url.query}"


def memory(work_dir: Path, side: int, count: int, concurrency: int) -> float:
    """Peak RSS growth (MB) of a fresh process mirroring ``count`` images of ``side``²."""
    images = make_images(work_dir / f"mem-{side}", count, side)
    host, base = image_host(work_dir / f"mem-{side}")
    try:
        urls = json.dumps([f"{base}/{p.name}" for p in images])
        # The peak is read from /proc (VmHWM), reset at the start (clear_refs 5): getrusage's
        # maxrss would carry the forking parent's peak into the child.
        code = (
            "import asyncio, json, sys; from pathlib import Path;"
            "from tools.bench.assets import taskhook_loop, vm;"
            "Path('/proc/self/clear_refs').write_text('5'); before = vm('VmRSS');"
            f"asyncio.run(taskhook_loop(json.loads(sys.argv[1]), {concurrency},"
            " Path(sys.argv[2])));"
            "print((vm('VmHWM') - before) / 1024)"
        )
        out = subprocess.run(  # noqa: S603
            [sys.executable, "-c", code, urls, str(work_dir / f"mem-out-{side}")],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        host.terminate()
        host.wait()


def vm(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (``VmRSS``, ``VmHWM``: the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def run(quick: bool, runs: int | None, work_dir: Path) -> dict[str, Any]:
    runs = runs or (1 if quick else 5)
    count, concurrency = (4, 2) if quick else (16, 8)
    results: dict[str, Any] = {
        "mirroring": mirroring(work_dir, count, concurrency, runs),
        "serving": serving(work_dir, 1.0 if quick else 5.0, 4 if quick else 16, runs),
    }
    small, large = (256, 1024) if quick else (1024, 4096)
    grow_small = memory(work_dir, small, count, concurrency)
    grow_large = memory(work_dir, large, count, concurrency)
    image_mb = (work_dir / f"mem-{large}" / f"img-{large}-0.png").stat().st_size / MB
    results["memory"] = {
        f"rss_growth_mb_{small}px": grow_small, f"rss_growth_mb_{large}px": grow_large,
        "large_image_mb": round(image_mb, 1), "concurrency": concurrency,
        "image_mb_x_concurrency": round(image_mb * concurrency, 1),
    }  # fmt: skip
    return results


def table(results: dict[str, Any]) -> str:
    m, s, r = results["mirroring"], results["serving"], results["memory"]
    rows = [
        f"mirroring  {m['images']}x {m['image_mb']} MB PNG, c={m['concurrency']}: taskhook "
        f"{m['taskhook_mb_s']:.0f} MB/s ({m['taskhook_images_s']:.1f} img/s) vs raw aiohttp "
        f"{m['raw_mb_s']:.0f} MB/s → {m['ratio']:.2f}x (goal ≥ {m['goal']}); without the "
        f"fsync (synchronous = NORMAL) {m['no_fsync_mb_s']:.0f} MB/s → "
        f"{m['no_fsync_ratio']:.2f}x",
        f"serving    {s['image_mb']} MB, c={s['concurrency']}: /assets {s['taskhook_req_s']:.0f}"
        f" req/s vs FileResponse {s['file_response_req_s']:.0f} req/s → {s['ratio']:.2f}x "
        f"(goal ≥ {s['goal']})",
        "memory     peak RSS growth: " + ", ".join(
            f"{k.removeprefix('rss_growth_mb_')}: {v:.0f} MB" for k, v in r.items()
            if k.startswith("rss_growth")
        ) + f" (one large image x concurrency = {r['image_mb_x_concurrency']} MB)",
    ]  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench-assets", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-assets-") as tmp:
        results = run(args.quick, args.runs, Path(tmp))
    print(table(results))
    out = ROOT / ".bench" / "assets.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
