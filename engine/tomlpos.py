"""Positions in a TOML file, for error messages.

`tomllib` gives no positions for keys and only puts the position of a syntax error inside its
message (`(at line 3, column 6)`). These helpers find the line and column where a key of a
given table is written, by a light scan of the text: good enough to point the user at the
right spot, never used to read values.
"""
from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOMLLIB_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def split_tomllib_message(message: str) -> tuple[str, int | None, int | None]:
    """'Expected ... (at line 3, column 6)' -> ('Expected ...', 3, 6)."""
    match = _TOMLLIB_POS.search(message)
    if not match:
        return message, None, None
    return message[: match.start()], int(match[1]), int(match[2])


def _norm(name: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in name.split("."))


class Locator:
    """Finds `key` inside `[table]` (or the n-th `[[table]]`) in one file's text."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        # (line index, table name, is_array) for each header, in order
        self.headers: list[tuple[int, str, bool]] = []
        for i, line in enumerate(self.lines):
            match = _HEADER.match(line)
            if match and not line.lstrip().startswith("#"):
                self.headers.append((i, _norm(match[2]), match[1] == "[["))

    def _table_span(self, table: str, nth: int) -> tuple[int, int] | None:
        """[start, end) line range of the table's body; the top level when table == ''."""
        starts = [i for i, (_, name, _) in enumerate(self.headers) if name == table]
        if table == "":
            end = self.headers[0][0] if self.headers else len(self.lines)
            return 0, end
        if nth >= len(starts):
            return None
        h = starts[nth]
        begin = self.headers[h][0]
        end = self.headers[h + 1][0] if h + 1 < len(self.headers) else len(self.lines)
        return begin, end

    def find(self, table: str, key: str | None = None, nth: int = 0) -> tuple[int | None, int | None]:
        """1-based (line, column) of `key =` in the table, else of the table's header."""
        span = self._table_span(table, nth)
        if span is None:
            # a dotted key at top level, e.g. `grid.lr = [...]` with no [grid] header
            span = (0, len(self.lines))
            key = f"{table}.{key}" if key else table
        begin, end = span
        if key is not None:
            parts = [re.escape(p) for p in key.split(".")]
            # the last part alone also matches: `[grid]` then `optim.betas = ...` or `betas` in
            # an inline table
            candidates = [r"\s*\.\s*".join(parts), parts[-1]]
            for pattern in candidates:
                key_re = re.compile(r"(^|[\s{,])[\"']?(" + pattern + r")[\"']?\s*=")
                for i in range(begin, end):
                    match = key_re.search(self.lines[i])
                    if match and not self.lines[i].lstrip().startswith("#"):
                        return i + 1, match.start(2) + 1
        if table and self._table_span(table, nth) is not None:
            return begin + 1, 1
        return None, None
