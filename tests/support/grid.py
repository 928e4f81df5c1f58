"""Reading Streamlit's data grid in a real browser: its accessible table of cells."""

from __future__ import annotations

import re
import time
from urllib.parse import unquote_plus

from playwright.sync_api import Page

from app.ui.overview_table import FLAG_LINK_TEXT


def as_displayed(text: str) -> str:
    """A link cell's accessible text is its URL; the grid draws the `display_text`
    the page gives it (the flag key of an overview link), so read that."""
    match = re.search(FLAG_LINK_TEXT, text) if text.startswith("/flag_detail?") else None
    return unquote_plus(match.group(1)) if match else text


def cells(page: Page, waiting_for: str, timeout_s: float = 45, index: int = 0) -> list[str]:
    """The cell texts of the page's `index`-th grid, once one of them is `waiting_for`."""
    deadline = time.monotonic() + timeout_s
    while True:
        grids = page.locator('[data-testid="stDataFrame"]')
        texts = (
            [
                as_displayed(text)
                for text in grids.nth(index).locator('[role="gridcell"]').all_inner_texts()
            ]
            if grids.count() > index
            else []
        )
        if waiting_for in texts or time.monotonic() > deadline:
            assert waiting_for in texts, f"no cell {waiting_for!r} in {texts[:40]}"
            return texts
        page.wait_for_timeout(250)


def row(page: Page, first_cell: str, width: int, index: int = 0, offset: int = 0) -> list[str]:
    """`width` cells of the row holding `first_cell` (starting `offset` cells before it)."""
    texts = cells(page, first_cell, index=index)
    start = texts.index(first_cell) - offset
    return texts[start : start + width]
