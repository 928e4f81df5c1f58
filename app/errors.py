"""The root of the project's own errors.

Every error `app` and `queries` raise on purpose derives from `RolloutError`, keeping
the built-in base it had (a `ValueError` for bad input, a `RuntimeError` for a source
that cannot answer...), so `except RolloutError` means "one of ours" and every existing
`except ValueError` still catches what it caught.
"""

from __future__ import annotations

__all__ = ["RolloutError"]


class RolloutError(Exception):
    """An error this project raises on purpose; its message is safe to show a person."""
