"""Everything about Unleash, the one flag server the dashboard talks to:

- `api`: the Admin API client (JSON in and out, timeouts, the token in no message);
- `mapping`: how an Unleash feature maps onto the flag model (pure functions);
- `metadata`: the optional local file for what Unleash has no place for;
- `backend`: the `unleash` flag backend (compare-and-set writes, outside changes);
- `metrics_sync`: Unleash's hourly client metrics copied into the evaluation roll-ups;
- `periodic_sync`: that sync run once (`sync-unleash`) or every few minutes (`serve`).

Each name below is imported from its module on first use: the CLI registers
`sync-unleash` from `periodic_sync` while `--help` loads no pydantic, SQLAlchemy or YAML.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.unleash.api import TestFailed, UnleashApi, UnleashRefused, UnleashUnavailable
    from app.unleash.backend import (
        ExternalChange,
        UnleashFlagBackend,
        dashboard_event_ids,
        file_lock,
        receipt_text,
    )
    from app.unleash.mapping import ExportedFeature, MappedFlag, map_feature
    from app.unleash.metadata import UnleashMetadata, load_metadata
    from app.unleash.metrics_sync import ORIGIN_PREFIX, SyncReport, sync_unleash
    from app.unleash.periodic_sync import (
        MAX_HOURS,
        recent_hours,
        start_periodic_sync,
        sync_once,
    )

__all__ = [
    "MAX_HOURS",
    "ORIGIN_PREFIX",
    "ExportedFeature",
    "ExternalChange",
    "MappedFlag",
    "SyncReport",
    "TestFailed",
    "UnleashApi",
    "UnleashFlagBackend",
    "UnleashMetadata",
    "UnleashRefused",
    "UnleashUnavailable",
    "dashboard_event_ids",
    "file_lock",
    "load_metadata",
    "map_feature",
    "receipt_text",
    "recent_hours",
    "start_periodic_sync",
    "sync_once",
    "sync_unleash",
]

_HOME = {
    **dict.fromkeys(["TestFailed", "UnleashApi", "UnleashRefused", "UnleashUnavailable"], "api"),
    **dict.fromkeys(
        [
            "ExternalChange",
            "UnleashFlagBackend",
            "dashboard_event_ids",
            "file_lock",
            "receipt_text",
        ],
        "backend",
    ),
    **dict.fromkeys(["ExportedFeature", "MappedFlag", "map_feature"], "mapping"),
    **dict.fromkeys(["UnleashMetadata", "load_metadata"], "metadata"),
    **dict.fromkeys(["ORIGIN_PREFIX", "SyncReport", "sync_unleash"], "metrics_sync"),
    **dict.fromkeys(
        ["MAX_HOURS", "recent_hours", "start_periodic_sync", "sync_once"], "periodic_sync"
    ),
}


def __getattr__(name: str) -> Any:
    """`name` from its module, imported now (PEP 562)."""
    try:
        module = _HOME[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
