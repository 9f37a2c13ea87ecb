"""The simulator's configuration, request validation, prompt tags and job state.

Pure: nothing here does I/O or reads the clock, so the state machine a test observes through
``recordInfo`` is exactly the one callbacks are built from. A job's state follows from the time
elapsed since creation alone, which keeps ``recordInfo`` truthful even when ``[sim:drop]``
suppresses every callback (that is what a reconciler polling a silent provider relies on).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from service.core.tasks import ASPECT_RATIOS, OUTPUT_FORMATS, RESOLUTIONS
from service.delivery.ssrf import TargetPolicy

from .images import ImageSpec

MAX_PROMPT = 20_000
MAX_NUM_IMAGES = 4
MAX_SEED = 2**32 - 1
MAX_DELAY_S = 600.0
#: jobs with callbacks still to send, by default (each holds one timer at a time)
MAX_PENDING_CALLBACKS = 1000
FAIL_CODE = "500"
FAIL_MSG = "Simulated failure"

_TAG = re.compile(r"\[sim:(fail|duplicate|reorder|drop|busy|delay=([0-9]*\.?[0-9]+))\]", re.I)


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulator behaves; one per app instance."""

    #: base URL the simulator is reachable at (e.g. ``http://127.0.0.1:8000/simulator``);
    #: result URLs are built on it
    public_url: str
    #: ``whsec_…`` secret the callbacks are signed with (Standard Webhooks)
    webhook_secret: str
    #: when set, createTask and recordInfo require ``Authorization: Bearer <api_key>``
    api_key: str | None = None
    #: time from createTask to the completion
    latency_ms: int = 200
    #: progress callbacks (state ``generating``) sent before the completion
    progress_steps: int = 1
    #: fraction of untagged tasks that fail, decided by a hash of prompt and seed
    failure_rate: float = 0.0
    #: attempts in all for a callback answered non-2xx or not reached (0.2 s, 0.5 s backoff)
    callback_attempts: int = 3
    #: where callbacks may go: the SSRF guard of deliveries (``[delivery] allowed_networks``);
    #: the default allows public addresses only
    callback_policy: TargetPolicy = field(default_factory=TargetPolicy)
    #: jobs whose callbacks are not all sent yet; createTask answers 429 beyond
    max_pending_callbacks: int = MAX_PENDING_CALLBACKS
    #: fraction of result images served badly (``image_fault``): a 500 that clears after one
    #: or two tries, a 404 for good, or a slow answer; 0 serves every image at once
    image_faults: float = 0.0


class InvalidRequest(ValueError):
    """A create body the simulator refuses (HTTP 422)."""


@dataclass(frozen=True)
class Tags:
    """The test behaviours a prompt asks for (``[sim:…]``, case-insensitive, combinable)."""

    fail: bool = False
    duplicate: bool = False
    reorder: bool = False
    drop: bool = False
    busy: bool = False
    delay_s: float | None = None


def parse_tags(prompt: str) -> Tags:
    """The tags in ``prompt``; a repeated ``delay`` uses the last one, capped at 600 s."""
    found: dict[str, Any] = {}
    for match in _TAG.finditer(prompt):
        name = match.group(1).lower()
        if match.group(2) is not None:
            found["delay_s"] = min(float(match.group(2)), MAX_DELAY_S)
        else:
            found[name] = True
    return Tags(**found)


def fails_by_rate(prompt: str, seed: int | None, failure_rate: float) -> bool:
    """Whether an untagged task fails: a stable hash of (prompt, seed) mapped onto [0, 1)."""
    if failure_rate <= 0:
        return False
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < failure_rate


class ImageFault(enum.Enum):
    """How the image route misbehaves for one image (``image_fault``)."""

    NONE = "none"
    #: 500 to its first one or two requests (``ImageBehaviour.failures``), then the image
    TRANSIENT = "transient"
    #: 404 to every request: the result is gone for good
    MISSING = "missing"
    #: the image, after a pause of 0.5 to 2 s (``ImageBehaviour.delay_s``)
    SLOW = "slow"


@dataclass(frozen=True)
class ImageBehaviour:
    fault: ImageFault
    #: requests answered 500 before the image is served (TRANSIENT only)
    failures: int = 0
    #: seconds before the answer (SLOW only)
    delay_s: float = 0.0


#: at most this many 500s before a TRANSIENT image is served
MAX_TRANSIENT_FAILURES = 2
SLOW_S = (0.5, 2.0)


def image_fault(image_id: str, index: int, fraction: float) -> ImageBehaviour:
    """How image ``index`` of ``image_id`` is served when ``fraction`` of images misbehave:
    decided by a stable hash of the two, so a 404 stays a 404 and anyone who knows the fraction
    (a soak judging the outcome) can tell which. The faulty third each: transient 500, 404, slow.
    """
    if fraction <= 0:
        return ImageBehaviour(ImageFault.NONE)
    digest = hashlib.sha256(f"taskhook-sim-image\x00{image_id}\x00{index}".encode()).digest()
    if int.from_bytes(digest[:8], "big") / 2**64 >= fraction:
        return ImageBehaviour(ImageFault.NONE)
    kind = digest[8] % 3
    if kind == 0:
        return ImageBehaviour(ImageFault.TRANSIENT, failures=1 + digest[9] % MAX_TRANSIENT_FAILURES)
    if kind == 1:
        return ImageBehaviour(ImageFault.MISSING)
    low, high = SLOW_S
    return ImageBehaviour(ImageFault.SLOW, delay_s=round(low + (high - low) * digest[10] / 255, 3))


@dataclass(frozen=True)
class CreateRequest:
    """A validated createTask body, defaults filled in."""

    body: dict[str, Any]
    model: str
    callback_url: str | None
    prompt: str
    aspect_ratio: str
    resolution: str
    output_format: str
    num_images: int
    seed: int | None

    @property
    def calls_back(self) -> bool:
        """Whether this job will send callbacks (and so hold a timer until they are sent)."""
        return self.callback_url is not None and not parse_tags(self.prompt).drop

    def busy_key(self) -> str:
        """Identifies "the same create call" for ``[sim:busy]``: callback URL plus input."""
        material = json.dumps([self.callback_url, self.body.get("input")], sort_keys=True)
        return hashlib.sha256(material.encode()).hexdigest()


def parse_create(body: object) -> CreateRequest:
    """Validate a createTask body in the Kie.ai market shape; ``InvalidRequest`` names the field."""
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise InvalidRequest("model is required")
    callback_url = body.get("callBackUrl")
    if callback_url is not None and not _is_http_url(callback_url):
        raise InvalidRequest("callBackUrl must be an http(s) URL")
    data = body.get("input")
    if not isinstance(data, dict):
        raise InvalidRequest("input must be an object")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT:
        raise InvalidRequest(f"input.prompt must be 1 to {MAX_PROMPT} characters")
    images = data.get("image_urls")
    if images is not None and not (
        isinstance(images, list) and all(_is_http_url(url) for url in images)
    ):
        raise InvalidRequest("input.image_urls must be a list of http(s) URLs")
    return CreateRequest(
        body=body,
        model=model,
        callback_url=callback_url,
        prompt=prompt,
        aspect_ratio=_choice(data, "aspect_ratio", ASPECT_RATIOS, "auto"),
        resolution=_choice(data, "resolution", RESOLUTIONS, "1k"),
        output_format=_choice(data, "output_format", OUTPUT_FORMATS, "png"),
        num_images=_integer(data, "num_images", 1, MAX_NUM_IMAGES, 1),
        seed=_integer(data, "seed", 0, MAX_SEED, None),
    )


def _choice(data: dict[str, Any], name: str, options: tuple[str, ...], default: str) -> str:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, str) and value.lower() in options:
        return value.lower()
    raise InvalidRequest(f"input.{name} must be one of {', '.join(options)}")


def _integer(data: dict[str, Any], name: str, low: int, high: int, default: int | None) -> Any:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(f"input.{name} must be a whole number from {low} to {high}")
    return value


def _is_http_url(url: object) -> bool:
    if not isinstance(url, str) or len(url) > 2048:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@dataclass(frozen=True)
class Job:
    """One simulated generation: what was asked, when, and how it will end.

    ``image_id`` names its images in their URLs, apart from ``task_id``: whoever is shown an
    image (an event's subscriber, say) learns nothing to ask ``recordInfo`` with.
    """

    task_id: str
    request: CreateRequest
    tags: Tags
    fails: bool
    created_ms: int
    due_ms: int
    image_id: str

    @property
    def duration_ms(self) -> int:
        return self.due_ms - self.created_ms

    def image_spec(self, index: int) -> ImageSpec:
        req = self.request
        return ImageSpec(
            req.prompt, req.seed, index, req.aspect_ratio, req.resolution, req.output_format
        )

    def result_urls(self, public_url: str) -> list[str]:
        base = public_url.rstrip("/")
        ext = self.request.output_format
        return [f"{base}/images/{self.image_id}/{i}.{ext}" for i in range(self.request.num_images)]

    def progress_at(self, now_ms: int) -> int:
        """Percent done while generating, always within 1..99."""
        elapsed = now_ms - self.created_ms
        return min(99, max(1, elapsed * 100 // max(1, self.duration_ms)))

    def data(self, now_ms: int, public_url: str, *, progress: int | None = None) -> dict[str, Any]:
        """The ``data`` object of recordInfo and of callbacks, as it stands at ``now_ms``.

        ``progress`` forces a "generating" snapshot with that percentage (progress callbacks
        are sent on a schedule, so their figure should not depend on scheduling jitter).
        """
        done = progress is None and now_ms >= self.due_ms
        if done:
            state = "fail" if self.fails else "success"
        elif progress is None and now_ms - self.created_ms < self.duration_ms // 20:
            state = "waiting"
        else:
            state = "generating"
        success = done and not self.fails
        # Kie echoes the whole create body as ``param``; the callback URL is left out, as it
        # carries taskhook's callback token and nothing reads it back
        param = {k: v for k, v in self.request.body.items() if k != "callBackUrl"}
        return {
            "taskId": self.task_id,
            "model": self.request.model,
            "state": state,
            "param": json.dumps(param),
            "resultJson": (
                json.dumps({"resultUrls": self.result_urls(public_url)}) if success else ""
            ),
            "failCode": FAIL_CODE if done and self.fails else "",
            "failMsg": FAIL_MSG if done and self.fails else "",
            "costTime": self.duration_ms if done else None,
            "createTime": self.created_ms,
            "completeTime": self.due_ms if done else None,
            "progress": self._progress(state, now_ms, progress),
        }

    def _progress(self, state: str, now_ms: int, forced: int | None) -> int:
        if state == "success":
            return 100
        if state in ("waiting", "fail"):
            return 0
        return forced if forced is not None else self.progress_at(now_ms)
