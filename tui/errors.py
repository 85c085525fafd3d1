"""One place that turns exceptions into what the user sees, and the exit code.

A GridrunError is one line (`file:line:col: message`) plus a `hint:` line, exit 2. Anything
else is a bug: one line saying so, the traceback only under GRIDRUN_DEBUG=1.
"""
from __future__ import annotations

import os
import sys
import traceback

import typer

from gridrun.engine.errors import GridrunError

# Typer vendors click from 0.27 on: take click's classes from Typer, whichever it uses.
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def report_error(error: GridrunError) -> int:
    print(f"gridrun: {error}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)
    return error.exit_code


def run_app(app, argv: list[str] | None = None) -> int:
    debug = os.environ.get("GRIDRUN_DEBUG") == "1"
    try:
        result = app(args=argv, prog_name="gridrun", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except GridrunError as e:
        if debug:
            traceback.print_exc()
        return report_error(e)
    except _UsageError as e:
        e.show()
        return 2
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `gridrun queue ls | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence
        if debug:
            traceback.print_exc()
        else:
            print(f"gridrun: internal error: {type(e).__name__}: {e} "
                  "(run with GRIDRUN_DEBUG=1 for the traceback)", file=sys.stderr)
        return 70
