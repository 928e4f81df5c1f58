"""The installed package's version, from its metadata (what `--version` prints)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["DISTRIBUTION", "package_version"]

DISTRIBUTION = "rollout-dashboard"


def package_version() -> str:
    """The version pip/uv installed (`0.1.0`); `unknown` when run from a checkout that was
    never installed."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
