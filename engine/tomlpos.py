"""Positions in a TOML file, for error messages.

`tomllib` gives no positions for keys and only puts the position of a syntax error inside its
message (`(at line 3, column 6)`). These helpers find the line and column where a key of a
given table is written, by a light scan of the text that knows strings, comments and
multi-line arrays (so `[0.5, 0.999]` on a line of its own is not a table header). Good enough
to point the user at the right spot; never used to read values.

`syntax_error` also corrects tomllib's position for what is left open: an unclosed array or
inline table, or an unterminated multi-line string, is reported where it was opened (tomllib
says "at end of document", or names a later line where it gave up).
"""
from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_TOMLLIB_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOMLLIB_END = re.compile(r"\s*\(at end of document\)\s*$")
_CLOSERS = {"[": ("array", "]"), "{": ("inline table", "}")}


def split_tomllib_message(message: str) -> tuple[str, int | None, int | None]:
    """'Expected ... (at line 3, column 6)' -> ('Expected ...', 3, 6)."""
    match = _TOMLLIB_POS.search(message)
    if not match:
        return message, None, None
    return message[: match.start()], int(match[1]), int(match[2])


def _norm(name: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in name.split("."))


class _Scan:
    """One pass over the lines that knows strings, comments and brackets inside values.

    `inside[i]`: line i starts inside a value (a multi-line array, inline table or string),
    where a `[...]` line is data, not a header. `unclosed`: (line, col, bracket) of each
    bracket never closed, outermost first; `open_string`: (line, col, delimiter) of a
    multi-line string never closed. Lines and columns are 1-based.
    """

    def __init__(self, lines: list[str]):
        self.inside: list[bool] = []
        stack: list[tuple[int, int, str]] = []
        ml: tuple[int, int, str] | None = None   # the open multi-line string
        for row, line in enumerate(lines, 1):
            self.inside.append(bool(stack) or ml is not None)
            i, n = 0, len(line)
            while i < n:
                if ml is not None:
                    end = line.find(ml[2], i)
                    if end < 0:
                        break
                    i, ml = end + 3, None
                    continue
                ch = line[i]
                if ch == "#":
                    break
                if line.startswith('"""', i) or line.startswith("'''", i):
                    ml, i = (row, i + 1, line[i:i + 3]), i + 3
                    continue
                if ch in "\"'":
                    j = i + 1
                    while j < n and line[j] != ch:
                        j += 2 if ch == '"' and line[j] == "\\" else 1
                    i = j + 1
                    continue
                if ch in "[{" and (stack or "=" in line[:i]):
                    stack.append((row, i + 1, ch))
                elif ch in "]}" and stack:
                    stack.pop()
                i += 1
        self.unclosed = stack
        self.open_string = ml


def _value_lines(lines: list[str]) -> list[bool]:
    """For each line: True when it starts inside a value (see `_Scan.inside`)."""
    return _Scan(lines).inside


def syntax_error(text: str, message: str) -> tuple[str, int | None, int | None]:
    """(message, line, col) for tomllib's error `message` about `text`.

    What was opened and never closed before the place tomllib gave up is the error, at the
    place where it was opened: the innermost such bracket, else a multi-line string.
    """
    lines = text.splitlines()
    at_end = _TOMLLIB_END.search(message)
    if at_end:
        message, line, col = message[: at_end.start()], None, None
    else:
        message, line, col = split_tomllib_message(message)
    scan = _Scan(lines)
    limit = (line, col or 0) if line is not None else (len(lines) + 1, 0)
    for row, column, bracket in reversed(scan.unclosed):
        if (row, column) <= limit:
            what, closer = _CLOSERS[bracket]
            return (f"unclosed {what}, expected '{closer}' to close the '{bracket}' opened here",
                    row, column)
    if scan.open_string is not None and scan.open_string[:2] <= limit:
        row, column, delim = scan.open_string
        return f"unterminated string, expected {delim} to close the one opened here", row, column
    if at_end:                      # the last line that holds anything
        line = next((i + 1 for i in range(len(lines) - 1, -1, -1) if lines[i].strip()), None)
    return message, line, col


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
