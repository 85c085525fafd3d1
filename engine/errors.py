"""The one exception type users see: a one-line message, an optional hint, exit code 2.

Everything the user can get wrong (a TOML file, a command-line value, a store file) raises
`GridrunError`; the CLI prints it as `file:line:col: message` plus `hint: ...` and exits 2.
Anything else is a bug and shows a traceback only under GRIDRUN_DEBUG=1.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class GridrunError(Exception):
    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, path: str | None = None,
                 line: int | None = None, col: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = path
        self.line = line
        self.col = col

    @property
    def where(self) -> str:
        """`file:line:col` with whatever parts are known ('' when none)."""
        parts = [str(p) for p in (self.path, self.line, self.col) if p is not None]
        return ":".join(parts)

    def __str__(self) -> str:
        # one line, whatever a quoted value holds
        message = self.message.replace("\r", "\\r").replace("\n", "\\n")
        return f"{self.where}: {message}" if self.where else message


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """'did you mean "x"?' for the closest of choices, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"?' if close else None
