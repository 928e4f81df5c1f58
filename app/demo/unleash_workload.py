"""The demo's users evaluating flags through the real Unleash SDK (`UnleashClient`).

One client per Unleash environment, with that environment's SDK token, refreshing every
2 s: a change made on the dashboard (or in Unleash) reaches the simulated users as it
reaches a real service. A flag the SDK says is enabled for a user serves its rollout
variant, else its default one; the workload adds its usual errors and latencies on top.

With the dashboard's flag backend (`backend`), the flags are read as the dashboard maps
them, at the SDK's pace, and the simulated instances report that configuration's
version, so the propagation guard sees a change arrive about one refresh later.
"""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import datetime
from typing import Any

from app.flags.backend import FlagBackend
from app.flags.evaluator import EvaluationContext, EvaluationResult, Reason
from app.flags.model import FlagConfig, FlagDefinition, FlagState

__all__ = ["UnleashEvaluators", "connect"]

REFRESH_SECONDS = 2


class UnleashEvaluators:
    """The `Evaluators` of one environment, backed by a started UnleashClient."""

    def __init__(self, client: Any, environment: str, backend: FlagBackend | None = None) -> None:
        self.client = client
        self.environment = environment
        self.backend = backend
        self._config = FlagConfig(version="unleash", environment=environment)
        self._read_at = 0.0
        self.maybe_reload()

    @property
    def config(self) -> FlagConfig:
        return self._config

    def maybe_reload(self) -> bool:
        """The flags as the dashboard maps them (every refresh interval), or the flag
        list as the SDK last fetched it; True when it changed."""
        if self.backend is not None:
            if time.monotonic() - self._read_at < REFRESH_SECONDS:
                return False
            self._read_at = time.monotonic()
            try:
                config = self.backend.load(self.environment).config
            except (OSError, RuntimeError, ValueError):
                return False  # Unleash down: the SDK serves what it last fetched
            changed = config != self._config
            self._config = config
            return changed
        names = sorted(self.client.feature_definitions())
        if names == sorted(self._config.flags):
            return False
        self._config = FlagConfig(
            version="unleash",
            environment=self.environment,
            flags={name: FlagDefinition(key=name, state=FlagState.ROLLOUT) for name in names},
        )
        return True

    def evaluate(
        self, flag: FlagDefinition, context: EvaluationContext, now: datetime
    ) -> EvaluationResult:
        on = self.client.is_enabled(flag.key, {"userId": context.user_id})
        variant = flag.rollout.variant if on else flag.default_variant
        return EvaluationResult(
            flag.key,
            variant,
            flag.variants.get(variant, on),
            Reason.SPLIT if on else Reason.DEFAULT,
        )


def connect(
    api_url: str, sdk_tokens: dict[str, str], backend: FlagBackend | None = None
) -> dict[str, UnleashEvaluators]:
    """One started UnleashClient per environment (`api_url` ends with `/api`)."""
    from UnleashClient import UnleashClient  # type: ignore[attr-defined]

    logging.getLogger("UnleashClient").setLevel(logging.ERROR)
    evaluators = {}
    for environment, token in sdk_tokens.items():
        client = UnleashClient(
            url=api_url,
            app_name="rollout-demo",
            instance_id=f"rollout-demo-{environment}",
            custom_headers={"Authorization": token},
            refresh_interval=REFRESH_SECONDS,
            metrics_interval=10,
            cache_directory=tempfile.mkdtemp(prefix=f"unleash-sdk-{environment}-"),
            multiple_instance_mode=_allow_many(),
        )
        client.initialize_client()
        evaluators[environment] = UnleashEvaluators(client, environment, backend)
    return evaluators


def _allow_many() -> Any:
    from UnleashClient.utils import InstanceAllowType

    return InstanceAllowType.SILENTLY_ALLOW
