"""Hostile YAML texts shared by the hostile-config tests and `bench_config`."""

from __future__ import annotations

__all__ = ["BIG", "NESTING", "block_nesting", "fifty_megabytes", "flow_nesting", "laughs"]

#: Size of the "50 MB config" and depth of the "100,000 nested brackets".
BIG = 50 * 1024 * 1024
NESTING = 100_000


def laughs(anchors: int = 9, width: int = 9, mapping: bool = False) -> str:
    """The "billion laughs" shape: each anchor holds `width` aliases of the previous one
    (2 KB at 9 x 9, 9^9 = 387 million nodes once expanded)."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, anchors):
        if mapping:
            body = "{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(width)) + "}"
        else:
            body = "[" + ", ".join([f"*a{i - 1}"] * width) + "]"
        lines.append(f"a{i}: &a{i} {body}")
    return "\n".join(lines) + "\n"


def flow_nesting(depth: int = NESTING) -> str:
    return "flags: " + "[" * depth + "]" * depth + "\n"


def block_nesting(depth: int = NESTING) -> str:
    return "flags:\n" + "- " * depth + "x\n"


def fifty_megabytes() -> bytes:
    """Flag lines repeated to 50 MB (refused by size, so their content does not matter)."""
    line = b"  some_flag: {state: enabled}  # padding to 50 MB\n"
    return b"flags:\n" + line * (BIG // len(line) + 1)
