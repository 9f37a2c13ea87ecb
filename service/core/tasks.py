"""Image tasks: validating a request into a ``TaskSpec`` and presenting a ``Task``.

Validation is strict (unknown fields are refused, like Stripe does) because a typo'd
``resolutoin`` silently falling back to 1k is a worse surprise than a 422 naming the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.core.clock import to_rfc3339
from service.core.ids import is_id
from service.core.ledger import Result, TaskState
from service.errors import ValidationFailed

ASPECT_RATIOS = ("1:1", "3:2", "2:3", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "auto")
RESOLUTIONS = ("1k", "2k", "4k")
OUTPUT_FORMATS = ("png", "jpeg")
TASK_TYPES = ("text-to-image", "edit")
MAX_PROMPT = 5000
MAX_IMAGES = 14
MAX_IMAGE_URL = 2048
#: An image URL as the OpenAPI document states it (this pattern is the schema's): http(s), a
#: host of letters, digits, dots and hyphens, an optional numeric port, then printable ASCII.
#: The API accepts exactly these, so what the document allows is what a request may send.
IMAGE_URL_PATTERN = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$"
_IMAGE_URL = re.compile(IMAGE_URL_PATTERN)
#: an upload's id, which ``images`` also takes (``POST /v1/uploads``)
UPLOAD_ID_PATTERN = "^upl_[0-9A-HJKMNP-TV-Z]{26}$"
MAX_METADATA_BYTES = 4096
MAX_SEED = 2**32 - 1
_FIELDS = frozenset(
    {
        "prompt",
        "model",
        "type",
        "images",
        "aspect_ratio",
        "resolution",
        "output_format",
        "num_images",
        "seed",
        "provider",
        "metadata",
    }
)


@dataclass(frozen=True)
class TaskSpec:
    """What the client asked for, validated and with defaults filled in."""

    prompt: str
    model: str
    type: str
    provider: str
    images: tuple[str, ...] = ()
    aspect_ratio: str = "auto"
    resolution: str = "1k"
    output_format: str = "png"
    num_images: int = 1
    seed: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        """The generation parameters, as shown in the task object and sent upstream."""
        return {
            "aspect_ratio": self.aspect_ratio,
            "resolution": self.resolution,
            "output_format": self.output_format,
            "num_images": self.num_images,
            "seed": self.seed,
            "images": list(self.images),
        }


@dataclass(frozen=True)
class Task:
    id: str
    account_id: str
    spec: TaskSpec
    state: TaskState
    cost_credits: int
    refunded_credits: int
    created_at: int


def parse_task_request(
    body: object, *, models: Collection[str], providers: Collection[str], default_provider: str
) -> TaskSpec:
    """Validate a ``POST /v1/tasks`` body; ``ValidationFailed`` names the first bad field."""
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown field '{unknown[0]}'.", field=unknown[0])

    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise ValidationFailed("prompt is required and must be a string.", field="prompt")
    if not prompt.strip() or len(prompt) > MAX_PROMPT:
        raise ValidationFailed(
            f"prompt must be 1 to {MAX_PROMPT} characters and not blank.", field="prompt"
        )
    if not storable_text(prompt):
        raise ValidationFailed(
            "prompt must be valid Unicode text without NUL characters.", field="prompt"
        )

    model = _choice(body, "model", tuple(models), default=None)
    images = _images(body.get("images"))
    task_type = _task_type(body.get("type"), images)
    return TaskSpec(
        prompt=prompt,
        model=model,
        type=task_type,
        provider=_choice(body, "provider", tuple(providers), default=default_provider),
        images=images,
        aspect_ratio=_choice(body, "aspect_ratio", ASPECT_RATIOS, default="auto"),
        resolution=_choice(body, "resolution", RESOLUTIONS, default="1k"),
        output_format=_choice(body, "output_format", OUTPUT_FORMATS, default="png"),
        num_images=_integer(body, "num_images", 1, 4, default=1),
        seed=_integer(body, "seed", 0, MAX_SEED, default=None),
        metadata=_metadata(body.get("metadata")),
    )


def _choice(body: Mapping[str, Any], name: str, options: tuple[str, ...], default: Any) -> Any:
    value = body.get(name)
    if value is None:
        if default is None:
            raise ValidationFailed(f"{name} is required: one of {', '.join(options)}.", field=name)
        return default
    if not isinstance(value, str) or value not in options:
        raise ValidationFailed(f"{name} must be one of {', '.join(options)}.", field=name)
    return value


def _integer(body: Mapping[str, Any], name: str, low: int, high: int, default: Any) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 3.0 is the integer 3
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationFailed(f"{name} must be a whole number from {low} to {high}.", field=name)
    return value


def _images(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValidationFailed("images must be a list of URLs or upload ids.", field="images")
    if not value or len(value) > MAX_IMAGES:
        raise ValidationFailed(
            f"images takes 1 to {MAX_IMAGES} URLs; leave it out for text-to-image.",
            field="images",
        )
    for url in value:
        if not (_is_http_url(url) or (isinstance(url, str) and is_id(url, "upl"))):
            raise ValidationFailed(
                f"images must hold http(s) URLs of at most {MAX_IMAGE_URL} characters"
                " or upload ids (upl_…).",
                field="images",
            )
    return tuple(value)


def upload_reference(image: str, public_base: str) -> str | None:
    """The upload an ``images`` entry names — its id, or taskhook's own link to it — else
    ``None`` (a URL somewhere else, for the provider to fetch)."""
    if is_id(image, "upl"):
        return image
    prefix = public_base.rstrip("/") + "/assets/"
    if public_base and image.startswith(prefix):
        candidate = image[len(prefix) :].split("?", 1)[0]
        if is_id(candidate, "upl"):
            return candidate
    return None


def storable_text(text: str) -> bool:
    """Text every backend keeps as it came: encodable as UTF-8 (no lone surrogates) and free
    of NUL, which PostgreSQL's text cannot hold."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_http_url(url: object) -> bool:
    return (
        isinstance(url, str) and len(url) <= MAX_IMAGE_URL and _IMAGE_URL.fullmatch(url) is not None
    )


def _task_type(value: object, images: tuple[str, ...]) -> str:
    if value is None:
        return "edit" if images else "text-to-image"
    if not isinstance(value, str) or value not in TASK_TYPES:
        raise ValidationFailed(f"type must be one of {', '.join(TASK_TYPES)}.", field="type")
    if value == "edit" and not images:
        raise ValidationFailed("An edit task needs at least one image URL.", field="images")
    if value == "text-to-image" and images:
        raise ValidationFailed(
            "A text-to-image task takes no images; use type 'edit'.", field="images"
        )
    return value


def _metadata(value: object) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationFailed("metadata must be a JSON object.", field="metadata")
    try:
        size = len(canonical_json(value).encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationFailed("metadata must be valid Unicode text.", field="metadata") from None
    if size > MAX_METADATA_BYTES:
        raise ValidationFailed(
            f"metadata must encode to at most {MAX_METADATA_BYTES} bytes.", field="metadata"
        )
    return value


def canonical_json(value: object) -> str:
    """Key-sorted, compact JSON: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_fingerprint(body: object) -> str:
    """The identity of a request body for ``Idempotency-Key``: whitespace and key order aside."""
    # surrogatepass: a lone surrogate must fingerprint, not crash (validation refuses it later)
    return hashlib.sha256(canonical_json(body).encode("utf-8", "surrogatepass")).hexdigest()


#: mints a fresh signed link to an asset (``service.assets.links.AssetLinks.url``)
Linker = Callable[[str], str]


def result_object(result: Result, link: Linker | None) -> dict[str, Any]:
    """A result as the contract shows it: ``url`` is taskhook's own fresh link to the kept
    image; a result kept before taskhook mirrored images shows the provider's link."""
    if result.asset_id is not None:
        if link is None:
            raise ValueError("a kept result needs a link minter to be shown")
        url = link(result.asset_id)
    else:
        url = result.url
    return {
        "url": url,
        "source_url": result.source_url or result.url,
        "content_type": result.content_type,
        "width": result.width,
        "height": result.height,
        "bytes": result.bytes,
        "sha256": result.sha256,
    }


def task_object(task: Task, link: Linker | None = None) -> dict[str, Any]:
    """The contract's task object (also the ``data`` of every task event); ``link`` mints the
    results' links (needed once a task has kept results)."""
    state = task.state
    return {
        "id": task.id,
        "status": str(state.status),
        "progress": state.progress,
        "sequence": state.sequence,
        "model": task.spec.model,
        "provider": task.spec.provider,
        "provider_task_id": state.provider_task_id,
        "type": task.spec.type,
        "prompt": task.spec.prompt,
        "params": task.spec.params,
        "results": [result_object(r, link) for r in state.results],
        "failure": (
            {"code": state.failure.code, "message": state.failure.message}
            if state.failure
            else None
        ),
        "cost_credits": task.cost_credits,
        "refunded_credits": task.refunded_credits,
        "metadata": dict(task.spec.metadata),
        "created_at": to_rfc3339(task.created_at),
        "updated_at": to_rfc3339(state.updated_at),
        "completed_at": (
            to_rfc3339(state.completed_at) if state.completed_at is not None else None
        ),
    }
