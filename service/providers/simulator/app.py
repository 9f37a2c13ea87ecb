"""The simulator as an HTTP provider: Kie.ai market API routes, callbacks and image serving.

It exists so taskhook can be developed, demonstrated and tested end to end with no paid
upstream: it answers like Kie.ai, calls back with Standard Webhooks signatures, and misbehaves
on request (prompt tags) in the ways real providers do — failing, retrying a callback, sending
callbacks out of order or not at all, being slow, rate limiting.

Mounted inside taskhook a sub-app's lifespan never runs, so the runtime (``Simulator``, kept at
``app.state.simulator``) creates its HTTP client on first use and offers ``aclose()`` for the
host to call; run alone, the app's own lifespan calls it.

Anyone who can reach createTask chooses where the callbacks go, so they go through the guard of
taskhook's own deliveries (``service.delivery.ssrf``: the URL checked before each send, every
resolved address checked at connect), and the jobs still to call back are capped, which caps
their timers too.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import json
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.core.clock import system_clock
from service.core.signing import decode_secret, headers_for
from service.delivery.ssrf import UnsafeTarget, check_url, guarded_connector
from service.logs import get_logger

from .images import ImageCache
from .jobs import (
    CreateRequest,
    ImageFault,
    InvalidRequest,
    Job,
    SimulatorConfig,
    fails_by_rate,
    image_fault,
    parse_create,
    parse_tags,
)

log = get_logger("taskhook.simulator")

#: jobs (and [sim:busy] counters) kept in memory; the oldest are forgotten past this
MAX_JOBS = 10_000
#: 429s answered per distinct create call carrying [sim:busy]
BUSY_REPLIES = 2
#: pause before the second, third, … callback attempt
RETRY_DELAYS_S = (0.2, 0.5)
CALLBACK_TIMEOUT_S = 10.0
#: connections open at once for callbacks
CALLBACK_CONNECTIONS = 100
#: what a createTask refused for want of room asks the caller to wait
FULL_RETRY_AFTER_S = 5

#: a callback to send: when (unix ms), its body, its webhook-id
_Step = tuple[int, bytes, str]


def _msg_id() -> str:
    return "msg_" + secrets.token_hex(16)


class _Refused(Exception):
    """The callback target is one the policy refuses: not worth another attempt."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Simulator:
    """Job state and callback delivery behind one simulator app."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.images = ImageCache()
        self._keys = [decode_secret(config.webhook_secret)]
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._by_image: dict[str, Job] = {}
        self._busy: OrderedDict[str, int] = OrderedDict()
        #: requests so far per (image id, index) of a TRANSIENT image still answering 500
        self._image_tries: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The callback client, created on first use (a mounted app's lifespan never runs).

        aiohttp, as deliveries use, for its connector: ``guarded_connector`` hands it only the
        resolved addresses the policy allows, so a name that resolves to a private address
        (or is rebound to one) is refused at connect time."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=guarded_connector(
                    self.config.callback_policy, limit=CALLBACK_CONNECTIONS, limit_per_host=0
                ),
                timeout=aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT_S),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def busy(self, request: CreateRequest) -> bool:
        """Whether this create call must be answered 429 (``[sim:busy]``: twice per request)."""
        if not parse_tags(request.prompt).busy:
            return False
        key = request.busy_key()
        seen = self._busy.get(key, 0)
        if seen >= BUSY_REPLIES:
            return False
        self._busy[key] = seen + 1
        self._busy.move_to_end(key)
        while len(self._busy) > MAX_JOBS:
            self._busy.popitem(last=False)
        return True

    def has_room(self, request: CreateRequest) -> bool:
        """Whether a job for ``request`` may be taken: one that will call back needs a slot
        among ``max_pending_callbacks``; one that never will holds no timer."""
        return not request.calls_back or len(self._tasks) < self.config.max_pending_callbacks

    def create(self, request: CreateRequest) -> Job:
        """Record a new job and schedule its callbacks."""
        tags = parse_tags(request.prompt)
        now = system_clock()
        duration = (
            round(tags.delay_s * 1000) if tags.delay_s is not None else self.config.latency_ms
        )
        job = Job(
            task_id="sim_" + secrets.token_hex(12),
            request=request,
            tags=tags,
            fails=tags.fail
            or fails_by_rate(request.prompt, request.seed, self.config.failure_rate),
            created_ms=now,
            due_ms=now + max(0, duration),
            image_id="img_" + secrets.token_urlsafe(18),
        )
        self._jobs[job.task_id] = job
        self._by_image[job.image_id] = job
        while len(self._jobs) > MAX_JOBS:
            _, forgotten = self._jobs.popitem(last=False)
            del self._by_image[forgotten.image_id]
        if request.callback_url is not None and request.calls_back:
            task = asyncio.create_task(self._run(job, request.callback_url))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        log.info("simulator.created", provider_task_id=job.task_id, fails=job.fails)
        return job

    def image_failure(self, job: Job, index: int) -> tuple[int | None, float]:
        """``[simulator] image_faults`` for this request of image ``index``: the error status
        to answer instead of the image (or None), and the seconds to wait first."""
        behaviour = image_fault(job.image_id, index, self.config.image_faults)
        if behaviour.fault is ImageFault.MISSING:
            return 404, 0.0
        if behaviour.fault is ImageFault.SLOW:
            return None, behaviour.delay_s
        if behaviour.fault is ImageFault.TRANSIENT:
            key = (job.image_id, index)
            tries = self._image_tries.get(key, 0)
            if tries < behaviour.failures:
                self._image_tries[key] = tries + 1
                self._image_tries.move_to_end(key)
                while len(self._image_tries) > MAX_JOBS:
                    self._image_tries.popitem(last=False)
                return 500, 0.0
        return None, 0.0

    def get(self, task_id: str) -> Job | None:
        return self._jobs.get(task_id)

    def by_image(self, image_id: str) -> Job | None:
        return self._by_image.get(image_id)

    @property
    def pending_callbacks(self) -> int:
        """Jobs whose callbacks are not all sent yet (shutdown must cancel them)."""
        return len(self._tasks)

    async def aclose(self) -> None:
        """Cancel pending callbacks and close the HTTP client; the host calls this on shutdown."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _steps(self, job: Job) -> list[_Step]:
        """The callbacks of ``job`` in sending order, honouring duplicate and reorder."""
        public = self.config.public_url
        count = max(0, self.config.progress_steps)
        progress: list[_Step] = []
        for i in range(1, count + 1):
            at = job.created_ms + job.duration_ms * i // (count + 1)
            percent = min(99, max(1, 100 * i // (count + 1)))
            body = {
                "code": 200,
                "msg": "generating",
                "data": job.data(at, public, progress=percent),
            }
            progress.append((at, _encode(body), _msg_id()))
        final = job.data(job.due_ms, public)
        if job.fails:
            done = {"code": 501, "msg": final["failMsg"], "data": final}
        else:
            done = {"code": 200, "msg": "success", "data": final}
        completion: _Step = (job.due_ms, _encode(done), _msg_id())
        completions = [completion, completion] if job.tags.duplicate else [completion]
        if job.tags.reorder:
            return completions + [(job.due_ms, body, msg) for _, body, msg in progress]
        return progress + completions

    async def _run(self, job: Job, url: str) -> None:
        try:
            for at_ms, body, msg_id in self._steps(job):
                wait_s = (at_ms - system_clock()) / 1000
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                await self._send(job, url, body, msg_id)
        except asyncio.CancelledError:
            raise
        except _Refused as refused:
            # the URL is not logged: it carries the caller's callback token
            log.warning(
                "simulator.callback_refused", provider_task_id=job.task_id, reason=refused.reason
            )
        except Exception:
            log.exception("simulator.callback_crashed", provider_task_id=job.task_id)

    async def _send(self, job: Job, url: str, body: bytes, msg_id: str) -> bool:
        """POST one callback, retrying on non-2xx and connection errors; True if delivered.

        Raises ``_Refused`` when the policy refuses the target: its URL (IP literals never reach
        the guarded resolver) or every address its host resolves to."""
        try:
            check_url(url, self.config.callback_policy)
        except UnsafeTarget as exc:
            raise _Refused(exc.message) from None
        attempts = max(1, self.config.callback_attempts)
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S)) - 1])
            stamp = system_clock() // 1000
            headers = headers_for(self._keys, msg_id, stamp, body)
            headers["content-type"] = "application/json"
            try:
                async with self.session.post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    if 200 <= response.status < 300:
                        return True
                    outcome = str(response.status)
            except aiohttp.ClientConnectorError as exc:
                if exc.os_error.errno == errno.EACCES:  # GuardedResolver: no allowed address
                    raise _Refused(exc.os_error.strerror or "no allowed address") from None
                outcome = type(exc).__name__
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                outcome = type(exc).__name__
            log.info(
                "simulator.callback_failed",
                provider_task_id=job.task_id,
                webhook_id=msg_id,
                attempt=attempt + 1,
                outcome=outcome,
            )
        return False


def _encode(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _error(status: int, msg: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": status, "msg": msg}, status_code=status, headers=headers)


class _Routes:
    """The HTTP face of one ``Simulator``."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def _authorized(self, request: Request) -> bool:
        key = self.sim.config.api_key
        if key is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {key}".encode())

    async def create_task(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "Unauthorized: missing or invalid API key")
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _error(400, "Request body is not valid JSON")
        try:
            create = parse_create(body)
        except InvalidRequest as exc:
            return _error(422, str(exc))
        if self.sim.busy(create):
            return _error(429, "Simulated rate limit, retry later", {"Retry-After": "1"})
        if not self.sim.has_room(create):
            return _error(
                429,
                "Too many tasks in progress, retry later",
                {"Retry-After": str(FULL_RETRY_AFTER_S)},
            )
        job = self.sim.create(create)
        return JSONResponse({"code": 200, "msg": "success", "data": {"taskId": job.task_id}})

    async def record_info(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "Unauthorized: missing or invalid API key")
        task_id = request.query_params.get("taskId", "")
        if not task_id:
            return _error(422, "taskId is required")
        job = self.sim.get(task_id)
        if job is None:
            return _error(404, "task not found")
        data = job.data(system_clock(), self.sim.config.public_url)
        return JSONResponse({"code": 200, "msg": "success", "data": data})

    async def image(self, request: Request) -> Response:
        job = self.sim.by_image(request.path_params["image_id"])
        index: int = request.path_params["index"]
        if (
            job is None
            or index >= job.request.num_images
            or request.path_params["ext"] != job.request.output_format
        ):
            return _error(404, "image not found")
        status, delay_s = self.sim.image_failure(job, index)
        if delay_s:
            await asyncio.sleep(delay_s)
        if status == 404:
            return _error(404, "image not found")
        if status is not None:
            return _error(status, "Simulated image server error, retry later")
        spec = job.image_spec(index)
        data = await self.sim.images.get(spec)
        return Response(
            data, media_type=spec.content_type, headers={"cache-control": "public, max-age=86400"}
        )


def create_simulator_app(config: SimulatorConfig) -> Starlette:
    """A Starlette app simulating a Kie.ai-shaped provider; mount it or serve it alone."""
    sim = Simulator(config)
    routes = _Routes(sim)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await sim.aclose()

    app = Starlette(
        routes=[
            Route("/api/v1/jobs/createTask", routes.create_task, methods=["POST"]),
            Route("/api/v1/jobs/recordInfo", routes.record_info, methods=["GET"]),
            Route("/images/{image_id}/{index:int}.{ext}", routes.image, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.simulator = sim
    return app
