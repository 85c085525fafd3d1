"""Positions in a TOML file, for error messages.

`tomllib` gives no positions for keys and only puts the position of a syntax error inside its
message (`(at line 3, column 6)`). These helpers find the line and column where a key of a
given table is written, by a light scan of the text that knows strings, comments and
multi-line arrays (so `[0.5, 0.999]` on a line of its own is not a table header). Good enough
to point the user at the right spot; never used to read values.
"""
from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_TOMLLIB_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def split_tomllib_message(message: str) -> tuple[str, int | None, int | None]:
    """'Expected ... (at line 3, column 6)' -> ('Expected ...', 3, 6)."""
    match = _TOMLLIB_POS.search(message)
    if not match:
        return message, None, None
    return message[: match.start()], int(match[1]), int(match[2])


def _norm(name: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in name.split("."))


def _value_lines(lines: list[str]) -> list[bool]:
    """For each line: True when it starts inside a value (a multi-line array, inline table or
    string), where a `[...]` line is data, not a header."""
    inside = []
    depth, ml = 0, None  # bracket depth; the open multi-line string delimiter
    for line in lines:
        inside.append(depth > 0 or ml is not None)
        i, n = 0, len(line)
        while i < n:
            if ml is not None:
                end = line.find(ml, i)
                if end < 0:
                    break
                i, ml = end + 3, None
                continue
            ch = line[i]
            if ch == "#":
                break
            if line.startswith('"""', i) or line.startswith("'''", i):
                ml, i = line[i:i + 3], i + 3
                continue
            if ch in "\"'":
                j = i + 1
                while j < n and line[j] != ch:
                    j += 2 if ch == '"' and line[j] == "\\" else 1
                i = j + 1
                continue
            if ch in "[{" and (depth > 0 or "=" in line[:i]):
                depth += 1
            elif ch in "]}" and depth > 0:
                depth -= 1
            i += 1
    return inside


class Locator:
    """Finds `key` inside `[table]` (or the n-th `[[table]]`) in one file's text."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        # (line index, table name) for each header, in order
        self.headers: list[tuple[int, str]] = []
        for i, (line, in_value) in enumerate(zip(self.lines, _value_lines(self.lines))):
            match = None if in_value else _HEADER.match(line)
            if match:
                self.headers.append((i, _norm(match[2])))

    def _spans(self, table: str) -> list[tuple[int, int]]:
        """[start, end) line ranges of each header named `table`; the top level for ''."""
        if table == "":
            return [(0, self.headers[0][0] if self.headers else len(self.lines))]
        spans = []
        for h, (begin, name) in enumerate(self.headers):
            if name == table:
                end = self.headers[h + 1][0] if h + 1 < len(self.headers) else len(self.lines)
                spans.append((begin, end))
        return spans

    def _search(self, span: tuple[int, int], key: str) -> tuple[int, int] | None:
        parts = [re.escape(p) for p in key.split(".")]
        key_re = re.compile(r"(^|[\s{,])[\"']?(" + r"[\"']?\s*\.\s*[\"']?".join(parts)
                            + r")[\"']?\s*[=.]")
        for i in range(*span):
            match = key_re.search(self.lines[i])
            if match and not self.lines[i].lstrip().startswith("#"):
                return i + 1, match.start(2) + 1
        return None

    def find(self, table: str, key: str | None = None, nth: int = 0
             ) -> tuple[int | None, int | None]:
        """1-based (line, column) of `key =` in the table, else of the table's header."""
        spans = self._spans(table)
        span = spans[nth] if nth < len(spans) else None
        if key is not None:
            parts = key.split(".")
            tries: list[tuple[tuple[int, int] | None, str]] = [(span, key)]
            # `[grid.optim]` then `betas = ...` for the key "optim.betas" of table "grid"
            for cut in range(1, len(parts)):
                sub = ".".join(([table] if table else []) + parts[:cut])
                tries += [(s, ".".join(parts[cut:])) for s in self._spans(sub)]
            # `grid.lr = [...]` written at the top level
            if table:
                tries.append((self._spans("")[0], f"{table}.{key}"))
            for where, name in tries:
                if where is not None and (found := self._search(where, name)):
                    return found
            if table == "":
                # an unknown [section], or `[include]` written with single brackets
                for line, name in self.headers:
                    if name == key or name.startswith(key + "."):
                        return line + 1, 1
        if span is not None and table:
            return span[0] + 1, 1
        return None, None
