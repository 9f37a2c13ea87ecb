"""The adapter for our own simulator: Kie's API shape, Standard Webhooks signatures.

The simulator answers ``createTask``/``recordInfo`` like Kie, so everything but the model names,
the input spelling and the callback signature is inherited from ``KieProvider``. Its callbacks are
signed with Standard Webhooks over the whole body (``{id}.{timestamp}.{body}``), so unlike Kie's
they cannot be replayed with another body: ``confirms_callbacks`` is False and a verified callback
is applied as it stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from service.core.signing import decode_secret, verify
from service.core.tasks import Task
from service.errors import ConfigError
from service.providers.base import ProviderConfig
from service.providers.kie import KieProvider


class SimulatorProvider(KieProvider):
    """The ``simulator`` adapter; ``config.webhook_key`` is the ``whsec_…`` callback secret.

    The secret is required and decoded once, here: a simulator whose callbacks could not be
    verified would leave every task to the reconciler, which is a configuration error worth
    stopping start-up for.
    """

    name: str = "simulator"
    accepts_callbacks: bool = True
    confirms_callbacks: bool = False
    takes_files: bool = False

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        if not config.webhook_key:
            raise ConfigError(
                "TASKHOOK_SIMULATOR_SECRET is required to verify simulator callbacks."
            )
        try:
            self._keys = [decode_secret(config.webhook_key)]
        except ValueError as exc:
            raise ConfigError(f"TASKHOOK_SIMULATOR_SECRET: {exc}") from None

    def verify_callback(self, headers: Mapping[str, str], body: bytes, now_ms: int) -> None:
        """Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``."""
        verify(self._keys, headers, body, now_ms // 1000, self._config.timestamp_tolerance_s)

    def model_name(self, task: Task) -> str:
        """The simulator knows our model names; they pass through unchanged."""
        return task.spec.model

    def input_for(self, task: Task) -> dict[str, Any]:
        """One uniform spelling for every model, with everything the simulator can honour."""
        spec = task.spec
        data: dict[str, Any] = {
            "prompt": spec.prompt,
            "aspect_ratio": spec.aspect_ratio,
            "resolution": spec.resolution.upper(),
            "output_format": spec.output_format,
            "num_images": spec.num_images,
        }
        if spec.seed is not None:
            data["seed"] = spec.seed
        if spec.images:
            data["image_urls"] = list(spec.images)
        return data
