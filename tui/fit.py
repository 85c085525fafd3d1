"""Fitting text into a width: values shortened at a word with an ellipsis, errors shortened
from the front (their last lines, the exception, are what matters), and column widths shared
out so that a table stays one line a row."""
from __future__ import annotations

from rich.cells import cell_len

ELLIPSIS = "…"
ERROR_LINE_JOIN = " | "   # how the daemon joins the last lines of a failed run's output


def ellipsize(text: str, width: int) -> str:
    """`text` in at most `width` cells: cut at the last word boundary that fits (when it
    keeps at least half), an ellipsis added."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    cut = _take_cells(text, width - 1)
    space = cut.rfind(" ")
    if space >= (width - 1) // 2:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def error_tail(error: str, width: int) -> str:
    """A failed run's error in at most `width` cells, keeping its end: the reason before the
    first ': ' (such as `exit code 3`) when short, then the last lines that fit, then the end
    of the last line. Multi-line text is read as lines, as is the daemon's ' | ' join."""
    flat = ERROR_LINE_JOIN.join(line.strip() for line in error.strip().splitlines()
                                if line.strip())
    if cell_len(flat) <= width:
        return flat
    if width <= 1:
        return ELLIPSIS[:width]
    reason, sep, rest = flat.partition(": ")
    # the reason only where it leaves most of the room to the exception
    head = f"{reason}: " if sep and cell_len(reason) + 2 <= width // 3 else ""
    body = rest if head else flat
    room = width - cell_len(head) - 1            # one cell for the ellipsis
    lines = body.split(ERROR_LINE_JOIN)
    kept: list[str] = []
    for line in reversed(lines):
        candidate = ERROR_LINE_JOIN.join([line, *kept])
        if cell_len(candidate) > room:
            break
        kept.insert(0, line)
    tail = ERROR_LINE_JOIN.join(kept) if kept else _last_cells(lines[-1], room).lstrip()
    return head + ELLIPSIS + tail


def share_widths(natural: list[int], minimum: list[int | None], total: int) -> list[int]:
    """Column widths that fit `total` cells: columns with a minimum (None: fixed) give up
    room, the widest first, down to their minimum."""
    widths = list(natural)
    excess = sum(widths) - total
    while excess > 0:
        flexible = [i for i, m in enumerate(minimum) if m is not None and widths[i] > m]
        if not flexible:
            break
        widest = max(flexible, key=lambda i: widths[i] - (minimum[i] or 0))
        others = sorted((widths[i] for i in flexible if i != widest), reverse=True)
        # down to the next widest column (at least by one), never below the minimum
        target = max(minimum[widest] or 0, others[0] if others else 0,
                     widths[widest] - excess)
        step = max(1, widths[widest] - target) if target < widths[widest] else 1
        step = min(step, widths[widest] - (minimum[widest] or 0), excess)
        widths[widest] -= step
        excess -= step
    return widths


def _take_cells(text: str, width: int) -> str:
    out, used = [], 0
    for ch in text:
        w = cell_len(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out)


def _last_cells(text: str, width: int) -> str:
    return _take_cells(text[::-1], width)[::-1]
