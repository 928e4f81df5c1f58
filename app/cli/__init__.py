"""The `rollout-dashboard` command: `main` is the console-script entry point."""

from app.cli.commands import main

__all__ = ["main"]
