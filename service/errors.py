"""The taskhook exception family.

Every error a caller can cause is a :class:`TaskhookError` subclass that knows its HTTP status and
its contract ``code``; the web edge maps them once (``service.web.errors``), so the core and the
use cases raise meaningful errors without knowing about HTTP.

::

    TaskhookError
    ├── ConfigError             bad or missing configuration; start-up stops (not an HTTP error)
    ├── MalformedRequest        400  the body or a parameter cannot be parsed at all
    ├── Unauthorized            401  no key, unknown key, revoked key
    ├── InsufficientCredits     402  the balance does not cover the price
    ├── NotFound                404  unknown, or another account's object (never 403)
    ├── Conflict                409  the object's state forbids it (a disabled endpoint, a
    │   │                            purged event)
    │   └── IdempotencyConflict 409  same Idempotency-Key, different body
    ├── PayloadTooLarge         413
    ├── UnsupportedMediaType    415
    ├── ValidationFailed        422  well-formed but invalid
    │   └── PromptBlocked       422  moderation said no (neutral message)
    ├── RateLimited             429  the key spent its request budget (``Retry-After``)
    ├── TooManyTasks            429  the account has max_in_flight_per_account tasks unfinished
    └── StoreError              500  the database failed (never caused by input)
        ├── StoreBusy           503  the write lock stayed taken past the busy timeout
        └── StoreUnavailable    503  the database cannot be reached (``Retry-After``)
"""

from __future__ import annotations


class TaskhookError(Exception):
    """Root of every error taskhook raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, object]:
        """The contract's error body: ``{"error": {"code", "message", "field"}}``."""
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class ConfigError(TaskhookError):
    """Configuration is missing or invalid; the message names the key."""

    code = "config_error"


class MalformedRequest(TaskhookError):
    status_code = 400
    code = "malformed_request"


class Unauthorized(TaskhookError):
    status_code = 401
    code = "unauthorized"


class InsufficientCredits(TaskhookError):
    status_code = 402
    code = "insufficient_credits"


class NotFound(TaskhookError):
    status_code = 404
    code = "not_found"


class Conflict(TaskhookError):
    """Well-formed, but the object is in a state that does not allow it (409, like Stripe)."""

    status_code = 409
    code = "conflict"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


class PayloadTooLarge(TaskhookError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(TaskhookError):
    status_code = 415
    code = "unsupported_media_type"


class ValidationFailed(TaskhookError):
    status_code = 422
    code = "validation_error"


class PromptBlocked(ValidationFailed):
    """Moderation blocked the prompt. The message stays neutral: it never names the rule."""

    code = "prompt_blocked"

    def __init__(self) -> None:
        super().__init__("The prompt was blocked by the content policy.", field="prompt")


class RateLimited(TaskhookError):
    """The API key made more requests than ``[api] rate_limit`` allows; ``retry_after`` is the
    whole seconds (at least 1) until the next one would be let through."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many requests for this API key: retry in {retry_after} s.")
        self.retry_after = retry_after


class TooManyTasks(TaskhookError):
    """The account has ``[tasks] max_in_flight_per_account`` tasks queued, submitted or running:
    a new one is refused, before any charge, until one of them finishes."""

    status_code = 429
    code = "too_many_tasks"

    def __init__(self, cap: int) -> None:
        super().__init__(
            f"This account already has {cap} unfinished tasks, the most it may have at once;"
            " submit again when one finishes."
        )


class StoreError(TaskhookError):
    """The database could not do what was asked (not the caller's fault)."""

    code = "store_error"


class StoreBusy(StoreError):
    """Another writer held the database past the busy timeout: retry shortly."""

    status_code = 503
    code = "store_busy"


class StoreUnavailable(StoreError):
    """The database is down, restarting or unreachable: nothing was written; retry after
    ``retry_after`` seconds (the service reconnects by itself)."""

    status_code = 503
    code = "store_unavailable"
    retry_after = 1
