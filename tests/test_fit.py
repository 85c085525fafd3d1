"""Text fitted to a width (tui/fit.py), and `gridrun queue ls` in a real 80-column terminal:
one line a run, values shortened at a word, a failed run's error keeping its exception."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios

from hypothesis import given, settings, strategies as st
from rich.cells import cell_len

from gridrun.tui.fit import ELLIPSIS, ellipsize, error_tail, share_widths
from tests.conftest import cli_env

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@given(st.text(), st.integers(min_value=0, max_value=120))
def test_ellipsize_fits_and_keeps_a_prefix(text, width):
    out = ellipsize(text, width)
    assert cell_len(out) <= width
    if cell_len(text) <= width:
        assert out == text
    elif width > 1:
        assert out.endswith(ELLIPSIS) and text.startswith(out[:-1].rstrip())


@given(st.text(), st.integers(min_value=0, max_value=120))
@settings(max_examples=300)
def test_error_tail_fits_and_keeps_the_end(error, width):
    out = error_tail(error, width)
    assert cell_len(out) <= width
    flat = " | ".join(line.strip() for line in error.strip().splitlines() if line.strip())
    if cell_len(flat) <= width:
        assert out == flat
    elif width > 1:
        kept = out.split(ELLIPSIS, 1)[1]
        assert flat.endswith(kept) and kept  # the end of the error is what is shown


def test_error_tail_keeps_the_exception_line_and_the_reason():
    error = ("exit code 3: Traceback (most recent call last): | File \"train.py\", line 9 "
             "| RuntimeError: CUDA error: device-side assert triggered")
    assert error_tail(error, 200) == error
    assert error_tail(error, 75) == ("exit code 3: …RuntimeError: CUDA error: device-side "
                                     "assert triggered")
    assert error_tail(error, 30) == "…device-side assert triggered"
    assert error_tail("line one\nline two\nValueError: bad", 22) == "…ValueError: bad"


@given(st.lists(st.tuples(st.integers(1, 60), st.one_of(st.none(), st.integers(1, 20))),
                min_size=1, max_size=12), st.integers(10, 200))
def test_share_widths_fits_when_the_minimums_allow_it(columns, total):
    natural = [n for n, _ in columns]
    minimum = [None if m is None else min(m, n) for n, m in columns]
    widths = share_widths(natural, minimum, total)
    floor = sum(n if m is None else m for n, m in zip(natural, minimum))
    assert sum(widths) <= max(total, floor)
    for w, n, m in zip(widths, natural, minimum):
        assert (w == n) if m is None else (m <= w <= n)
    if sum(natural) <= total:
        assert widths == natural


def in_terminal(argv: list[str], env: dict, cwd, columns: int = 80, rows: int = 24) -> str:
    """Run a command on a pseudo-terminal of the given size; what it printed, colours removed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                            close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=30) == 0
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


def test_queue_ls_fits_80_columns(cli, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import sys\nlr = float(sys.argv[2])\n"
        "print('Epoch [1/2], Loss: 0.5, Accuracy: 50%', flush=True)\n"
        "if lr > 0.15:\n    print('Traceback (most recent call last):', file=sys.stderr)\n"
        "    print('  File \"train.py\", line 5, in <module>', file=sys.stderr)\n"
        "    raise SystemExit('ValueError: the learning rate exploded at step 1234')\n"
        "print('Epoch [2/2], Loss: 0.25, Accuracy: 75%')\n")
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        'name = "a-sweep-with-a-rather-long-name"\n'
        f'command = ["{sys.executable}", "{script}", "--lr", "{{lr}}", "{{note}}"]\n'
        '[grid]\nlr = [0.1, 0.2]\n'
        'note = ["a long free-text parameter value that cannot fit in eighty columns", "x"]\n')
    cli("queue", "run", sweep, check=1)
    wide = cli("queue", "ls", check=0).stdout.splitlines()   # piped: 200 columns
    assert len(wide) == 5 and all(cell_len(line) <= 200 for line in wide)
    assert sum("learning rate exploded at step 1234" in line for line in wide) == 2
    out = in_terminal(cli.argv("queue", "ls"), cli_env(cli.home, TERM="xterm-256color"),
                      cli.cwd, columns=80)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 + 4                          # the header and one line a run
    assert all(cell_len(line) <= 80 for line in lines), lines
    failed = [line for line in lines if "✗ failed" in line]
    assert len(failed) == 2
    for line in failed:  # the end of the error, the exception, is what is kept
        note = line.split("✗ failed", 1)[1]
        assert "at step 1234" in note and "Traceback" not in note
    # the parameters are cut after a whole word ("lr=0.1 note=a long..." -> "lr=0.1…")
    assert all(re.search(r" lr=0\.[12]… ", line) for line in lines[1:]), lines
