"""What every upstream provider adapter offers, in the core's terms.

An adapter turns a task into the provider's create call, the provider's status answer or
callback into a ledger ``Change``, and the provider's HTTP failures into two kinds of error:
``ProviderRetryable`` (429, 5xx, timeouts, connection errors: try again later, honouring
``retry_after``) and ``ProviderRejected`` (400/401/402/404/422…: the task fails, readably, and is
refunded). Adapters do no retries and no bookkeeping themselves: the submitter and reconciler do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from service.core.imagesize import CONTENT_TYPES, dimensions
from service.core.ledger import Change, Failure, Result, TaskStatus
from service.core.tasks import Task
from service.errors import TaskhookError


@dataclass(frozen=True)
class ProviderConfig:
    """One provider's connection settings (from ``TASKHOOK_<NAME>_*``)."""

    name: str
    base_url: str
    api_key: str | None = None
    #: the key callbacks are verified with (kie: HMAC key; simulator: a whsec_ secret)
    webhook_key: str | None = None
    timeout_s: float = 30.0
    timestamp_tolerance_s: int = 300


@dataclass(frozen=True)
class ProviderUpdate:
    """A provider's word on a task: which task (its id there) and where it says it is.

    Providers give result URLs but rarely sizes; ``change_for`` completes them from what the
    task asked for.
    """

    provider_task_id: str
    status: TaskStatus
    progress: int | None = None
    result_urls: tuple[str, ...] = ()
    failure: Failure | None = None

    def change_for(self, task: Task) -> Change:
        """The ledger change this update proposes for ``task``."""
        results: tuple[Result, ...] = ()
        if self.status is TaskStatus.SUCCEEDED:
            width, height = dimensions(task.spec.aspect_ratio, task.spec.resolution)
            content_type = CONTENT_TYPES[task.spec.output_format]
            results = tuple(Result(url, content_type, width, height) for url in self.result_urls)
        return Change(
            status=self.status,
            progress=self.progress,
            provider_task_id=self.provider_task_id,
            results=results,
            failure=self.failure,
        )


class ProviderError(TaskhookError):
    """Something went wrong talking to a provider."""

    status_code = 502
    code = "provider_error"


class ProviderRetryable(ProviderError):
    """Worth trying again: 429, 5xx, a timeout or a connection error."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProviderRejected(ProviderError):
    """The provider refused the task for good; ``failure`` is what the task will show."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class CallbackInvalid(ProviderError):
    """A callback body or header that cannot be parsed (400; signatures are 401 elsewhere)."""

    status_code = 400
    code = "invalid_callback"


@dataclass(frozen=True)
class ReferenceFile:
    """An uploaded reference image's bytes, for a provider that takes files, not URLs."""

    data: bytes
    content_type: str
    filename: str


class ReferenceFiles(Protocol):
    """Reads uploads (``upl_…``) from the asset store (``service.assets.keeper.UploadFiles``)."""

    async def read(self, upload_id: str) -> ReferenceFile: ...


class Provider(Protocol):
    name: str
    #: True if uploads are sent as files (``ReferenceFiles``); False: as signed links
    takes_files: bool
    #: True if the provider calls back; False for poll-only providers
    accepts_callbacks: bool
    #: True if a callback's claims must be confirmed with ``fetch_status`` before they apply
    #: (kie: its signature does not cover the body)
    confirms_callbacks: bool

    async def submit(self, task: Task, callback_url: str | None) -> str:
        """Create the task upstream; return the provider's task id."""
        ...

    async def fetch_status(self, provider_task_id: str) -> ProviderUpdate:
        """Poll the provider for a task's state."""
        ...

    def verify_callback(self, headers: Mapping[str, str], body: bytes, now_ms: int) -> None:
        """Raise ``SignatureInvalid`` (401) unless the callback is authentic and fresh, or
        ``CallbackInvalid`` (400) when the body must be read to check it and cannot be (kie
        signs the body's ``taskId``).

        ``headers`` has lower-case names. Pure: no I/O.
        """
        ...

    def parse_callback(self, body: bytes) -> ProviderUpdate:
        """The update a callback body carries; ``CallbackInvalid`` (400) if it has none."""
        ...
