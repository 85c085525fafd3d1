"""A run's output as `less +F` and lazygit show it: it follows the end until the user scrolls
up (`f` follows again), and it searches (`/`, then `n`/`N` between the lines that match)."""
from __future__ import annotations

import re

from rich.style import Style
from textual.strip import Strip
from textual.widgets import Log

CURRENT_HIT = Style(reverse=True)
OTHER_HIT = Style(underline=True, bold=True)
LINE_ENDINGS = re.compile(r"\r\n|\r|\n")


class LogPane(Log):
    """A Log with a follow mode and a search. Everything here runs on the event loop, on
    lines already in memory (at most `max_lines` of them)."""

    def __init__(self, **kwargs):
        super().__init__(auto_scroll=False, **kwargs)
        self.follow = True
        self.term = ""
        self.hits: list[int] = []       # indices of the lines that hold the term
        self.hit = -1                   # which of them is the current one

    def write(self, data: str, scroll_end: bool | None = None) -> LogPane:
        """Log.write, keeping the search's line numbers right when `max_lines` drops lines
        from the top (Log starts a line per \\r\\n, \\r or \\n, and one first when empty)."""
        before = self.line_count
        super().write(data, scroll_end)
        if data and self.hits:
            expected = before + (before == 0) + len(LINE_ENDINGS.findall(data))
            dropped = expected - self.line_count
            if dropped > 0:
                current = self.hits[self.hit] - dropped if 0 <= self.hit < len(self.hits) else -1
                self.hits = [h - dropped for h in self.hits if h >= dropped]
                self.hit = self.hits.index(current) if current in self.hits else \
                    (0 if self.hits else -1)
        return self

    # -- following -----------------------------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        """Scrolling up stops following; reaching the end again follows."""
        super().watch_scroll_y(old_value, new_value)
        if new_value < old_value and not self.is_vertical_scroll_end:
            self._set_follow(False)
        elif new_value > old_value and self.is_vertical_scroll_end:
            self._set_follow(True)

    def _set_follow(self, follow: bool) -> None:
        if follow != self.follow:
            self.follow = follow
            self._subtitle()

    def toggle_follow(self) -> None:
        self._set_follow(not self.follow)
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def appended(self) -> None:
        """After new output: to the end when following; the search sees the new lines."""
        if self.term:
            self._find(keep=True)
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def top(self) -> None:
        self.scroll_home(animate=False, immediate=True)
        self._set_follow(False)

    def bottom(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self._set_follow(True)

    # -- searching ------------------------------------------------------------------------------

    def search(self, term: str) -> int:
        """Find the lines holding `term` (case-insensitive) and go to the first one from the top
        of the view on; returns how many lines match."""
        self.term = term
        self._find(keep=False)
        if self.hits:
            first_shown = int(self.scroll_y)
            self.hit = next((i for i, line in enumerate(self.hits) if line >= first_shown), 0)
            self._show_hit()
        self._subtitle()
        self.refresh()
        return len(self.hits)

    def next_hit(self, step: int) -> None:
        if not self.hits:
            self._subtitle()
            return
        self.hit = (self.hit + step) % len(self.hits)
        self._show_hit()

    def _find(self, keep: bool) -> None:
        needle = self.term.lower()
        current = self.hits[self.hit] if keep and 0 <= self.hit < len(self.hits) else None
        self.hits = [i for i, line in enumerate(self.lines) if needle in line.lower()]
        if current is not None and current in self.hits:
            self.hit = self.hits.index(current)
        elif self.hit >= len(self.hits):
            self.hit = len(self.hits) - 1
        self._subtitle()

    def _show_hit(self) -> None:
        line = self.hits[self.hit]
        self._set_follow(False)
        self.scroll_to(y=max(line - self.scrollable_content_region.height // 2, 0),
                       animate=False, immediate=True)
        self._subtitle()
        self.refresh()

    def _subtitle(self) -> None:
        parts = ["following" if self.follow else "paused: f follows"]
        if self.term:
            parts.append(f"/{self.term}: " + (f"{self.hit + 1} of {len(self.hits)}"
                                               if self.hits else "not found"))
        self.border_subtitle = " · ".join(parts)

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if self.hits:
            index = int(self.scroll_y) + y
            if 0 <= self.hit < len(self.hits) and index == self.hits[self.hit]:
                return strip.apply_style(CURRENT_HIT)
            if index in self._hit_set():
                return strip.apply_style(OTHER_HIT)
        return strip

    def _hit_set(self) -> set[int]:
        cached = getattr(self, "_hits_cached", None)
        if cached is None or cached[0] is not self.hits:
            cached = (self.hits, set(self.hits))
            self._hits_cached = cached
        return cached[1]
