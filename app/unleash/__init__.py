"""Everything about Unleash, the one flag server the dashboard talks to:

- `api`: the Admin API client (JSON in and out, timeouts, the token in no message);
- `mapping`: how an Unleash feature maps onto the flag model (pure functions);
- `metadata`: the optional local file for what Unleash has no place for;
- `backend`: the `unleash` flag backend (compare-and-set writes, outside changes);
- `metrics_sync`: Unleash's hourly client metrics copied into the evaluation roll-ups;
- `periodic_sync`: that sync run once (`sync-unleash`) or every few minutes (`serve`).

Import from the module homes: the CLI registers `sync-unleash` from `periodic_sync`,
which loads no pydantic, SQLAlchemy or YAML, so `--help` stays light.
"""

__all__ = ["api", "backend", "mapping", "metadata", "metrics_sync", "periodic_sync"]
