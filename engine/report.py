"""Metrics in and out of a run: `report()` for training scripts, a line parser for the rest.

This module is the whole contract between a training script and gridrun, so it is tiny and
depends on the standard library only (no torch, no numpy, nothing from the rest of `engine`).

1. A script reports with::

       from gridrun.engine.report import report
       report(epoch=3, train_loss=0.31, val_acc=0.97, lr=1e-3)

   Under gridrun (`GRIDRUN_RUN_DIR` set) that appends one JSON object to
   `$GRIDRUN_RUN_DIR/metrics.jsonl`, stamped with `"time"` (unix seconds), in one `os.write` on an
   O_APPEND descriptor: a reader tailing the file never sees two reports interleaved. NaN and
   +-inf are written as `null` and listed under `"nonfinite"`. Run by hand, it prints
   `epoch=3 train_loss=0.31 val_acc=0.97 lr=0.001` instead. `read_metrics(path)` reads the file
   back, skipping a torn last line.

2. Scripts that only print are understood by `parse_line` / `OutputParser`: general rules, not a
   list of one framework's formats (`name: value`, `name=value`, `name value`, fractions,
   percentages, dict/JSON lines, tqdm/Lightning/Keras bars, "test"/"validation" prefixes), plus
   the user's own regexes (named groups) from the sweep's `[parse]` table. Lines that report a
   problem (`ValueError: lr 1.5 too large`, `error: width = 30 ...`, a traceback) are not
   metrics. A parsed NaN/inf is given as a float nan/inf: whoever stores it turns it into null
   and flags the run `diverged` (engine.tail does). Names are ASCII; values are int or float.
   Totals (`epochs` from `Epoch 3/15`) stay in the records, for the epoch bar and the ETA, but
   are not metric series: they are listed in `TOTALS` and never in `OutputParser.names`.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["report", "report_to", "read_metrics", "parse_line", "OutputParser", "ENV_RUN_DIR",
           "METRICS_FILE", "TOTALS"]

ENV_RUN_DIR = "GRIDRUN_RUN_DIR"
METRICS_FILE = "metrics.jsonl"

# ---------------------------------------------------------------------------------------------
# report(): the training script's side
# ---------------------------------------------------------------------------------------------

def _scalar(value: Any) -> Any:
    """`value` as a plain None/bool/int/float/str, or the sentinel `_NOT_SCALAR`."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):          # numpy.str_ and other str subclasses
        return str(value)
    if isinstance(value, int):          # IntEnum, ...
        return int(value)
    if isinstance(value, float):        # numpy.float64 is a float subclass
        return float(value)
    return _NOT_SCALAR


_NOT_SCALAR = object()


_MAX_DEPTH = 32                      # nesting deeper than this in one report is refused


def _text(text: str) -> str:
    """`text` as valid Unicode: a lone surrogate (bytes smuggled in by `surrogateescape`) becomes
    U+FFFD, so the line written is strict UTF-8 JSON that any reader can decode."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _coerce(name: str, value: Any, depth: int = 0) -> Any:
    """A JSON-able value from what a script passes: Python scalars, numpy/torch scalars, and
    lists/tuples/dicts of them (per-class accuracies); text made valid Unicode."""
    plain = _scalar(value)
    if plain is not _NOT_SCALAR:
        return _text(plain) if isinstance(plain, str) else plain
    if isinstance(value, (list, tuple, dict)):
        if depth >= _MAX_DEPTH:
            raise TypeError(f"report(): metric {name!r} is nested over {_MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            return {_text(str(k)): _coerce(name, v, depth + 1) for k, v in value.items()}
        return [_coerce(name, v, depth + 1) for v in value]
    item = getattr(value, "item", None)  # numpy scalars, 0-d arrays, one-element tensors
    if callable(item):
        try:
            plain = _scalar(item())
        except Exception:               # noqa: BLE001 - e.g. a tensor of several elements
            plain = _NOT_SCALAR
        if plain is not _NOT_SCALAR:
            return _text(plain) if isinstance(plain, str) else plain
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"report(): metric {name!r} is a {type(value).__name__}; expected a number, bool, "
            "str or None, or a list/dict of them (a tensor must hold one element)") from None


def _finite(value: Any) -> tuple[Any, bool]:
    """(`value` with every NaN/inf, however nested, replaced by None; whether there was one)."""
    if isinstance(value, float):
        return (value, False) if math.isfinite(value) else (None, True)
    if isinstance(value, list):
        pairs = [_finite(v) for v in value]
        return [v for v, _ in pairs], any(bad for _, bad in pairs)
    if isinstance(value, dict):
        pairs_d = {k: _finite(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs_d.items()}, any(b for _, b in pairs_d.values())
    return value, False


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".6g")
    if isinstance(value, str):
        return json.dumps(value) if (not value or any(c.isspace() or c == "=" for c in value)) \
            else value
    return str(value)


def report(**metrics: Any) -> None:
    """Report one set of metrics (one epoch, one evaluation, ...).

    With `GRIDRUN_RUN_DIR` set: appends `{...metrics, "time": <unix time>}` as one line of
    `$GRIDRUN_RUN_DIR/metrics.jsonl` (NaN/inf, also inside a list or dict, become null and the
    metric is listed under "nonfinite"; text that is not valid Unicode is replaced; a `time`
    given by the caller is kept). Without it: prints `name=value ...` to stdout.
    """
    run_dir = os.environ.get(ENV_RUN_DIR)
    if not run_dir:
        values = {_text(name): _coerce(name, value) for name, value in metrics.items()}
        print(" ".join(f"{k}={_format_value(v)}" for k, v in values.items()), flush=True)
        return
    report_to(run_dir, **metrics)


def report_to(run_dir: str | os.PathLike[str], **metrics: Any) -> None:
    """report() into the given run folder, whatever `GRIDRUN_RUN_DIR` says: for a process that
    trains several runs at once (experiments.fused), each into its own metrics.jsonl."""
    values = {_text(name): _coerce(name, value) for name, value in metrics.items()}
    record: dict[str, Any] = {}
    nonfinite: list[str] = []
    for name, value in values.items():
        value, bad = _finite(value)
        if bad:
            nonfinite.append(name)
        record[name] = value

    record.setdefault("time", time.time())
    if nonfinite:
        record["nonfinite"] = nonfinite
    data = (json.dumps(record, allow_nan=False, separators=(", ", ": ")) + "\n").encode("utf-8")
    path = os.path.join(run_dir, METRICS_FILE)
    flags = os.O_APPEND | os.O_CREAT | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(run_dir, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    try:
        written = os.write(fd, data)    # one write: O_APPEND keeps the line whole
        while written < len(data):      # a short write (full disk, signal): finish the line
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)


def read_metrics(path: str | os.PathLike[str]) -> list[dict]:
    """The records of a metrics.jsonl file, in order; a missing file reads as [].

    A torn last line (a writer caught mid-write) and any line that is not a JSON object are
    skipped rather than raised: the file is tailed while runs write to it.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return []
    records: list[dict] = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            records.append(obj)
    return records


# ---------------------------------------------------------------------------------------------
# parse_line(): printed text -> metrics
# ---------------------------------------------------------------------------------------------

_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?|\d+\.\d+|\.\d+|\d+)(?:[eE][-+]?\d+)?"
_NONFINITE = r"[-+]?(?i:nan|inf(?:inity)?)(?![A-Za-z])"
_JSON_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

# Quick rejection: nothing numeric on the line.
_HAS_NUMBER = re.compile(r"[0-9]|(?i:nan|inf)")

# One value: a number not glued to a word, a path or a version, with what may follow it.
_VALUE_RE = re.compile(
    r"(?<![\w@./\-])"
    r"(?P<num>" + _NUM + "|" + _NONFINITE + ")"
    r"(?:(?P<frac>\s*/\s*(?P<den>\d+)(?![.\d])(?:\s*\(\s*\d+(?:\.\d+)?\s*%\s*\))?)"
    r"|(?P<pct>\s?%)"
    r"|(?P<unit>[A-Za-z]+(?:/[A-Za-z]+)?|/[A-Za-z]+)"
    r"|(?P<sunit>\s(?:[KMGTP]i?B|[KMGT]|bytes|params|[A-Za-z]+/s|s/[A-Za-z]+)(?![\w/])))?"
    r"(?P<bad>\.?[\w@/])?")

# The words just before a value: `Training Loss`, `val_acc`, `Acc@1`, `top-1 err`.
# Words up to the end of a clause after a value: `create 8 worker processes.` (a count in prose).
_PROSE_AFTER = re.compile(r"\s+[A-Za-z][\w\-']*(?:\s+[A-Za-z][\w\-']*)*\s*(?:[.,;!?)\]]|$)")
_NAME_TAIL = re.compile(r"(?<![\w@.\-/])(?:[A-Za-z][\w@.\-/]*[ ])*[A-Za-z][\w@.\-/]*$")

# What is not a metric: escapes, timestamps, log levels, file:line locations, bar graphics.
# Each is tried only when a cheap test says it may be there (the daemon feeds megabytes).
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]")
_STAMP_RE = re.compile(
    r"\d(?:\d{3}[-/.]\d{1,2}[-/.]\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?"
    r"(?:Z|[+-]\d{2}:?\d{2})?)?"                                                # dates
    r"|(?<![\w.:]\d)\d{0,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?![\w:]))")            # clock times
_LEVEL_RE = re.compile(
    r"\b(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL|TRACE|SUCCESS|NOTICE)\b"
    r"(?::[\w.<>\-]*:)?")
_LEVEL_GATE = re.compile(r"DEBUG|INFO|WARN|ERROR|CRITICAL|FATAL|TRACE|SUCCESS|NOTICE")
_PYFILE_RE = re.compile(r"[\w./\\<>\-]*\.py(?::\d+)?(?![\w])")                # file.py:12
_MODFUNC_RE = re.compile(r"(?<![\w.<>])[\w.<>]+:[\w.<>]+:\d+(?![\w])")        # mod:func:12
_TQDM_BAR_RE = re.compile(r"\d{1,3}(?:\.\d+)?%\|[^|]*\|")
_KERAS_BAR_RE = re.compile(r"\[[=>.\- ]*[=>.]{3,}[=>.\- ]*\]")
_BLOCKS = "\u2500-\u259f\u25a0-\u25ff\u2800-\u28ff"
_BLOCK_RE = re.compile("[" + _BLOCKS + "]+")


# A line that reports a problem is not a metric line, whatever numbers its message quotes
# (`ValueError: learning rate 1.5 too large`, `error: vit.width = 30 is not a multiple of
# vit.heads = 4`). Recognised by how such a line starts, after a timestamp / log-prefix / file
# location: an exception's class name, a traceback's own lines, a problem log level, or a
# problem word with a colon followed by prose (`Error: 0.23` is still a metric).
# (`in` tests on the lowercased line: ten times faster than one case-insensitive regex)
_DIAG_WORDS = ("err", "exce", "warn", "trace", "assert", "raise", "file", "fatal", "fail",
               "panic", "abort", "caus")
_DIAG_RE = re.compile(
    r"^(?>[\s\d|:\-()<>*#=,.+/]"                                 # stamps, separators
    r"|\[(?!\s*(?:ERROR|CRITICAL|FATAL|WARN))[^\]\n]{0,40}\]"     # [rank0], [12:00:03]
    r"|(?:INFO|DEBUG|NOTICE|TRACE|SUCCESS)\b(?::[\w.<>\-]*:)?"      # harmless log levels
    r"|[\w/\\<>\-][\w./\\<>\-]{0,200}?\.py(?::\d+)?(?![\w]))*+"     # file.py:12:
    r"(?:\[?\s*(?:ERROR|CRITICAL|FATAL|WARNING|WARN)\b"
    r"|(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Warning|Interrupt|Exit|Fault|Failure)\b"
    r"|(?:Error|Exception)\s+(?:in|while|during|occurred|raised)\b"
    r"|Traceback\b|File\s+\"|raise\s|assert\s"
    r"|(?i:error|warning|warn|fatal|panic|exception|failed|failure|abort(?:ed)?|caused by"
    r"|assertion(?:\s+failed)?)\s*[:!]\s*(?![-+.\d\s]|(?i:nan|inf)|$))")


def _diagnostic(line: str) -> bool:
    """True when the line reports a problem (an exception, a traceback, an error/warning)."""
    low = line.lower()
    for word in _DIAG_WORDS:
        if word in low:
            return _DIAG_RE.match(line) is not None
    return False


def _clean(s: str) -> str:
    if "\x1b" in s:
        s = _ANSI_RE.sub("", s)
    if ":" in s or "-" in s or "/" in s:
        s = _STAMP_RE.sub(" | ", s)
    if _LEVEL_GATE.search(s):
        s = _LEVEL_RE.sub(" | ", s)
    if ".py" in s:
        s = _PYFILE_RE.sub(" | ", s)
    if s.count(":") >= 2:
        s = _MODFUNC_RE.sub(" | ", s)
    if "%|" in s:
        s = _TQDM_BAR_RE.sub(" | ", s)
    if "[" in s and ("==" in s or ".." in s or "=>" in s):
        s = _KERAS_BAR_RE.sub(" | ", s)
    if not s.isascii():
        s = _BLOCK_RE.sub(" | ", s)
    return s


# Unnamed counters at the start of a line: `[1,  2000] loss: 2.18` (the PyTorch CIFAR tutorial:
# epoch, step), `[3/25][10/1583] Loss_D: ...` (DCGAN), `[3/15] loss: ...` (epoch), `[12] ...`
# (a step). They count only when the rest of the line holds named metrics.
_LEAD_RE = re.compile(
    r"^\s*\[\s*(?P<e>\d+)\s*(?:/\s*(?P<es>\d+)\s*)?"
    r"(?:\]\s*\[\s*|,\s*)(?P<s>\d+)\s*(?:/\s*(?P<ss>\d+)\s*)?\]"
    r"|^\s*\[\s*(?P<e2>\d+)\s*/\s*(?P<es2>\d+)\s*\]"
    r"|^\s*\[\s*(?P<s2>\d+)\s*\]")

# Dict- and JSON-like text: 'name': number pairs (numpy/torch reprs unwrapped; a number in quotes
# counts too: recent Hugging Face Trainers print `{'eval_loss': '0.4127', 'epoch': '2'}`).
_DICT_PAIR = re.compile(
    r"""(['"])(?P<k>[^'"\n]{1,80}?)\1\s*:\s*(?:[A-Za-z_][\w.]*\(\s*)?(?P<q>['"]?)"""
    r"(?P<v>" + _JSON_NUM + "|" + _NONFINITE + r"|-?Infinity|NaN)(?P=q)(?=\s*[,}\])])")
_CALL_REPR = re.compile(r"(?<![\w.])[A-Z]\w*\((?:[^()]|\([^()]*\))*=(?:[^()]|\([^()]*\))*\)")
_DICT_SPAN = re.compile(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}")

# Prose: `Accuracy of the network on the 10000 test images: 54 %`, `Accuracy of plane : 60 %`,
# `Accuracy for class: plane is 57.2 %`, `Loss on validation set: 0.31`.
_SENTENCE_RE = re.compile(
    r"^\W*(?P<head>(?:[A-Za-z][\w@\-]*\s+)?[A-Za-z][\w@\-]*)\s+(?:of|on|for|over)\s+(?P<mid>[^:=]*?)\s*[:=]\s*"
    r"(?:(?P<obj>[A-Za-z][\w\-]*)\s+(?:is|=|:)\s+)?"
    r"(?P<num>" + _NUM + "|" + _NONFINITE + r")\s*%?\s*$")
_TWO_CELLS = re.compile(r"^[\s|]*([A-Za-z][\w@.\-/ ]*?)[\s|]*\|[\s|]*(" + _NUM + "|" + _NONFINITE
                        + r")[\s|]*$")
_METRIC_HEADS = frozenset(
    "accuracy acc loss error err precision recall f1 auc perplexity ppl iou miou dice bleu "
    "score map top1 top5".split())

_PHASE_WORDS = {
    "validation": "val", "validating": "val", "valid": "val", "val": "val", "eval": "val",
    "evaluation": "val", "evaluating": "val", "test": "test", "testing": "test",
    "train": "train", "training": "train",
}
_PHASE_RE = re.compile(r"(?i)(?<![A-Za-z0-9_])(" + "|".join(_PHASE_WORDS) + r")(?![A-Za-z0-9_])")
_PHASE_TOKENS = frozenset(_PHASE_WORDS) | {"trn", "tst", "dev"}
_FILLERS = frozenset({"average", "avg", "mean"})
_STOPWORDS = frozenset(
    "a an the to of in on at by for from with and or is are was were be been being set took "
    "takes taken using use used after before into than this that these those it its as has "
    "have had got found saved saving loaded loading done finished completed complete over out "
    "will not no we i you our your each every all left remaining since until which what "
    "true false none null".split())
_PROGRESS = {"epoch": "epochs", "step": "steps", "iter": "iters", "iteration": "iterations",
             "batch": "batches", "episode": "episodes"}
# Totals (`Epoch 3/15` -> epochs=15) are kept in the records because the interface reads the
# last record's `epochs` for the epoch bar and the ETA (engine/feed.py, tui/fmt.py), but they
# are information, not metric series: OutputParser.names never lists them.
TOTALS = frozenset(_PROGRESS.values())
_NO_PREFIX = frozenset(_PROGRESS) | frozenset(_PROGRESS.values()) | {
    "lr", "learning_rate", "global_step"}
_BLOCKED = frozenset(
    "v_num pid ppid tid rank local_rank global_rank node_rank world_size line lineno port eta "
    "group "
    "cuda gpu device cuda_visible_devices version python torch jan feb mar apr may jun jul aug "
    "sep sept oct nov dec january february march april june july august september october "
    "november december mon tue wed thu fri sat sun".split())
_BLOCKED_TOKENS = frozenset({"dataloader", "version", "pid", "group"})
_TIME_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "ms": 1e-3,
               "msec": 1e-3, "us": 1e-6, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
               "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600}
_NORM_RE = re.compile(r"[^a-z0-9]+")


def _norm(text: str) -> str:
    return _NORM_RE.sub("_", text.lower()).strip("_")


def _to_number(text: str) -> int | float | None:
    text = text.strip().rstrip("%").strip()
    if "," in text:
        text = text.replace(",", "")
    try:
        if text.lstrip("+-").isdigit():
            return int(text)
        return float(text)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    """int(text), or None where Python refuses it (over 4300 digits): output is hostile."""
    try:
        return int(text)
    except ValueError:
        return None


_MAX_NAME = 100                     # a longer "name" is a run's garbage, not a metric's name


def _valid_name(name: str) -> bool:
    if not name or not ("a" <= name[0] <= "z") or len(name) > _MAX_NAME or name in _BLOCKED:
        return False
    return not (_BLOCKED_TOKENS & set(name.split("_")))


def _has_phase(name: str) -> bool:
    return bool(_PHASE_TOKENS & set(name.split("_")))


def _words_to_name(words: list[str]) -> tuple[str | None, str | None]:
    """(metric name, phase the words speak of) for the words naming one value.

    Prose (several words) has its validation/test word shortened in place (`Validation Loss` ->
    `val_loss`, `Best valid acc` -> `best_val_acc`) and filler words dropped (`Average loss` ->
    `loss`); a train word stays (`Training Loss` -> `training_loss`) except before a counter
    (`Train Epoch` -> `epoch`). One word is taken as written (`valid_loss` stays). A phase word
    alone names nothing.
    """
    lw = [w.lower() for w in words]
    if len(lw) == 1:
        word = lw[0]
        if word in _PHASE_WORDS:
            return None, _PHASE_WORDS[word]
        if word.endswith("ing") and len(word) > 4:    # Downloading 100%, Loading 3 files
            return None, None
        return _norm(word) or None, None
    phase = None
    rest: list[str] = []                             # the words without phase words
    named: list[str] = []                            # val/test words mapped in place
    for w in lw:
        p = _PHASE_WORDS.get(w)
        if p is None:
            rest.append(w)
            named.append(w)
        else:
            if phase is None or p != "train":
                phase = p
            named.append(w if p == "train" else p)   # "Training Loss" -> training_loss
    if lw[-1].endswith("ing") and len(lw[-1]) > 4 and lw[-1] not in _PHASE_WORDS:
        return None, phase                           # Sanity Checking 3
    if len(rest) > 1 or (rest and phase is None):
        trimmed = [w for w in rest if w not in _FILLERS]
        if trimmed and len(trimmed) != len(rest):
            rest = trimmed
            named = [w for w in named if w not in _FILLERS]
    if not rest:
        return None, phase
    base = _norm("_".join(rest))
    if base in _NO_PREFIX:                           # "Train Epoch" -> epoch
        return base, phase
    return _norm("_".join(named)), phase             # "Best val acc" -> best_val_acc


def _context_of(text: str, ctx: str | None) -> str | None:
    for m in _PHASE_RE.finditer(text):
        ctx = _PHASE_WORDS[m.group(1).lower()]
    return ctx


_SegInfo = tuple[str | None, bool, str | None, bool, bool, bool]
_SEG_CACHE: dict[tuple[str, str | None], _SegInfo] = {}


def _seg_name(seg: str, ctx: str | None) -> _SegInfo:
    """What the text before a value says:
    (name, emptied, context after, bracket, train alone, explicit).

    `emptied`: the words were prose only ("took", "in"); `bracket`: the value follows `[`/`(`;
    `train alone`: the words were just "Train" (timm writes the epoch there); `explicit`: a
    `:` or `=` stands between name and value. Memoized: the same few separators recur on
    every line of a run's output.
    """
    key = (seg, ctx)
    hit = _SEG_CACHE.get(key)
    if hit is not None:
        return hit
    t = seg.rstrip()
    bracket = explicit = False
    while t and t[-1] in ":=[(":
        if t[-1] in "[(":
            if bracket:
                break
            bracket = True
        else:
            explicit = True
        t = t[:-1].rstrip()
    nm = _NAME_TAIL.search(t) if t else None
    name: str | None = None
    emptied = False
    train_alone = False
    if nm is None:
        ctx = _context_of(t, ctx) if t else ctx
    else:
        words = nm.group().split(" ")
        dropped = t[:nm.start()]
        for i in range(len(words) - 2, -1, -1):      # a sentence ended: "Done. loss 0.3"
            if words[i].endswith("."):
                dropped += " " + " ".join(words[:i + 1])
                words = words[i + 1:]
                break
        words = [w.rstrip(".-/") for w in words]
        words = [w for w in words if w]
        stop = ""
        for i in range(len(words) - 1, -1, -1):
            if words[i].lower() in _STOPWORDS:
                stop = words[i].lower()
                dropped += " " + " ".join(words[:i + 1])
                words = words[i + 1:]
                emptied = not words
                break
        ctx = _context_of(dropped, ctx) if dropped else ctx
        if 0 < len(words) <= 4:                      # longer: prose, not a metric's name
            name, phase = _words_to_name(words)
            if name in _PROGRESS and stop in ("at", "from", "since", "until"):
                name = None                          # "best 0.95 at epoch 12": not this epoch
            if phase is not None:
                ctx = None if phase == "train" else phase
                train_alone = name is None and phase == "train" and len(words) == 1
            elif name is not None and ctx in ("val", "test") and name not in _NO_PREFIX \
                    and not _has_phase(name):
                name = f"{ctx}_{name}"
    if name is not None and not _valid_name(name):
        name = None
    result = (name, emptied, ctx, bracket, train_alone, explicit)
    if len(_SEG_CACHE) >= 4096:
        _SEG_CACHE.clear()
    _SEG_CACHE[key] = result
    return result


def _general(s: str, out: dict[str, int | float]) -> None:
    """The `name <sep> value` rule over a cleaned line, left to right."""
    ctx: str | None = None          # "val"/"test" once the line speaks of them
    prev = 0
    for m in _VALUE_RE.finditer(s):
        if m.group("bad"):
            continue                # 2.1.0, 28x28, 3_000: not a value; its text stays in seg
        name, emptied, ctx, bracket, train_alone, explicit = _seg_name(s[prev:m.start()], ctx)
        prev = m.end()
        num, den, unit = m.group("num", "den", "unit")
        if m.group("sunit"):
            continue                # 20.00 MiB, 11.2 M, 45 it/s: sizes and rates
        if train_alone and not den and num.isdigit() \
                and s[prev:prev + 3].lstrip().startswith("["):
            name = "epoch"          # timm: `Train: 3 [ 100/1251 (8%)]`
        elif bracket and name is not None and not den and name not in _PROGRESS:
            name = None             # `cuda_visible_devices: [0]`, `Size([64`
        elif name is not None and not (explicit or den or unit or m.group("pct")) \
                and name not in _PROGRESS and _PROSE_AFTER.match(s, prev):
            name = None             # `will create 8 worker processes.`: a count in prose

        # --- the value -----------------------------------------------------------------
        value = _to_number(num)
        if value is None:
            continue
        if unit:
            mult = _TIME_UNITS.get(unit.lower())
            if mult is None or name in _NO_PREFIX:
                continue            # 45.2it/s, 2ms/step, 1.2M, 3GB, `Step: 52ms`: not metrics
            if name is None:
                if not emptied:
                    continue
                name = "time"       # "Epoch 3 took 12.5s"
            if mult != 1:
                try:
                    value = value * mult
                except OverflowError:   # an int too large for a float
                    continue
        if name is None:
            continue
        if den:
            d = _int(den)
            if d is None:
                continue
            if name in _PROGRESS:
                out[name] = int(value) if isinstance(value, float) and value.is_integer() \
                    else value
                out[_PROGRESS[name]] = d
                continue
            if d == 0:
                continue
            try:
                value = value * 100 / d
            except OverflowError:
                continue
        out[name] = value


def _dict_pairs(s: str, out: dict[str, int | float]) -> bool:
    found = False
    for m in _DICT_PAIR.finditer(s):
        name = _norm(m.group("k"))
        value = _to_number(m.group("v"))
        if value is not None and _valid_name(name):
            out[name] = value
            found = True
    return found


def _sentence(s: str, out: dict[str, int | float]) -> bool:
    m = _SENTENCE_RE.match(s)
    if m is None:
        return False
    words = m.group("head").split()
    if words[-1].lower() not in _METRIC_HEADS:
        return False
    value = _to_number(m.group("num"))
    if value is None:
        return False
    head, head_phase = _words_to_name(words)
    if head is None:
        return False
    mid = m.group("mid")
    phase = _context_of(mid, None)
    if head_phase is not None:
        name = head
    elif phase in ("val", "test"):
        name = f"{phase}_{head}"
    elif phase == "train":
        name = f"train_{head}"
    elif m.group("obj"):
        name = f"{head}_{_norm(m.group('obj'))}"
    else:
        rest = [w for w in re.findall(r"[A-Za-z][\w\-]*", mid) if w.lower() not in _STOPWORDS]
        if not rest:
            return False
        name = f"{head}_{_norm(rest[-1])}"
    if not _valid_name(name):
        return False
    out[name] = value
    return True


def _user_metrics(line: str, patterns: Iterable[re.Pattern[str]]) -> dict[str, int | float]:
    found: dict[str, int | float] = {}
    for pat in patterns:
        m = (re.compile(pat) if isinstance(pat, str) else pat).search(line)
        if m is None:
            continue
        for name, text in m.groupdict().items():
            if text is None:
                continue
            value = _to_number(text)
            if value is not None:
                found[name] = value
    return found


def parse_line(line: str, patterns: Sequence[re.Pattern[str]] = ()) -> dict[str, float | int]:
    """The metrics one printed line holds ({} for most lines).

    `patterns` are the user's compiled regexes: each is `search`ed on the line and its named
    groups that matched (numbers) become metrics, taking precedence over the general rules.
    """
    if not _HAS_NUMBER.search(line):
        return {}
    user = _user_metrics(line, patterns) if patterns else None
    if _diagnostic(_ANSI_RE.sub("", line) if "\x1b" in line else line):
        return user or {}       # the user's own regexes still apply: they asked for it

    out: dict[str, int | float] = {}
    s = _clean(line)
    if "{" in s and _dict_pairs(s, out):
        s = _DICT_SPAN.sub(" | ", s)
    if "(" in s and "=" in s:       # Namespace(lr=0.1), Linear(in_features=784): settings
        s = _CALL_REPR.sub(" | ", s)
    if "|" in s:
        cell = _TWO_CELLS.match(s)   # a two-column table row: `| test_acc | 0.98 |`
        if cell is not None:
            s = f"{cell.group(1)}: {cell.group(2)}"
    if not _sentence(s, out):
        lead = _LEAD_RE.match(s)
        if lead is not None:
            before = len(out)
            _general(s[lead.end():], out)
            if len(out) > before:
                e, es = lead.group("e") or lead.group("e2"), lead.group("es") or lead.group("es2")
                counters = {
                    "epoch": e, "epochs": es,
                    "step": lead.group("s") or lead.group("s2"),   # XGBoost: `[12]\tval-logloss:0.4`
                    "steps": lead.group("s") and lead.group("ss")}
                for k, text in counters.items():
                    value = _int(text) if text else None
                    if value is not None:
                        out.setdefault(k, value)
        else:
            _general(s, out)
    if user:
        out.update(user)
    return out


# ---------------------------------------------------------------------------------------------
# OutputParser: a stream of output -> records
# ---------------------------------------------------------------------------------------------

_LINE_SPLIT = re.compile(r"[\r\n\x08]+")
_MAX_PARTIAL = 1 << 16               # a "line" longer than this keeps only its tail
_HEADER_HINTS = ("loss", "acc", "epoch", "step", "err", "lr", "f1", "auc", "ppl", "perplex",
                 "score", "iter", "dice", "iou", "bleu", "map", "precision", "recall")
_HEADER_TOKEN = re.compile(r"[A-Za-z][\w@.\-/ ]*")
_ROW_TOKEN = re.compile(r"(?P<n>" + _NUM + "|" + _NONFINITE + r")%?|(?P<t>\d+:\d{2}(?::\d{2})?)"
                        r"|#na#|-+|n/a|N/A|None")
_EPOCH_KEYS = ("step", "iteration", "iter")
# A Keras progress line: `1875/1875 [=====...] - 3s ...`, `313/313 ━━━━ 1s ...`, `1875/1875 - 3s`.
_KERAS_COUNT = re.compile(r"^\s*\d+/(\d+)\s+(?:\[|\u2501|-\s)")
_TRACEBACK = re.compile(r"^(?:\[[^\]\n]{0,40}\]:?\s*)?Traceback \(most recent call last\)")


def _evaluated(name: str) -> str:
    """The name a metric of an evaluation pass gets: `loss` -> `test_loss`."""
    return name if name in _NO_PREFIX or _has_phase(name) else f"test_{name}"


def _compile_patterns(patterns: Sequence[str | re.Pattern[str]]) -> list[re.Pattern[str]]:
    compiled: list[re.Pattern[str]] = []
    for pat in patterns:
        if isinstance(pat, re.Pattern):
            rx = pat
        else:
            if not isinstance(pat, str):
                raise ValueError(f"parse pattern {pat!r} is not a string")
            try:
                rx = re.compile(pat)
            except re.error as exc:
                raise ValueError(f"invalid parse pattern {pat!r}: {exc}") from None
        if not rx.groupindex:
            raise ValueError(
                f"parse pattern {rx.pattern!r} has no named group; name the metric it captures, "
                "e.g. 'top1 (?P<val_acc>[0-9.]+)'")
        compiled.append(rx)
    return compiled


class OutputParser:
    """Turns a run's output, fed in chunks, into records (one per epoch, or step).

    Metrics of consecutive lines merge into the record in progress (latest value wins); a line
    whose `epoch` (or, where no epoch was ever seen, `step`/`iteration`) differs from the record
    in progress completes it. Lines end at `\\n`, `\\r` (progress bars) and backspaces.
    """

    def __init__(self, patterns: Sequence[str | re.Pattern[str]] = ()):
        self.patterns: list[re.Pattern[str]] = _compile_patterns(patterns)
        self.names: set[str] = set()
        self._partial = ""
        self._record: dict[str, int | float] = {}
        self._header: list[str] | None = None   # a table's column names (fastai-style)
        self._bar_total: str | None = None      # the Keras bar's total in the record in progress
        self._in_traceback = False              # inside a traceback's indented lines

    # -- public ------------------------------------------------------------------------------
    def feed(self, text: str) -> list[dict]:
        """Consume a chunk of output; return the records this chunk completed."""
        if not text:
            return []
        lines = _LINE_SPLIT.split(self._partial + text)
        partial = lines.pop()
        self._partial = partial if len(partial) <= _MAX_PARTIAL else partial[-_MAX_PARTIAL:]
        done: list[dict] = []
        for line in lines:
            if line:
                self._line(line, done)
        return done

    def current(self) -> dict:
        """The record in progress (a copy)."""
        return dict(self._record)

    def close(self) -> list[dict]:
        """End of output: parse the unterminated last line, flush the record in progress."""
        done: list[dict] = []
        if self._partial:
            line, self._partial = self._partial, ""
            self._line(line, done)
        if self._record:
            done.append(self._record)
            self._record = {}
        self._bar_total = None
        return done

    # -- internals ---------------------------------------------------------------------------
    def _line(self, line: str, done: list[dict]) -> None:
        if len(line) > _MAX_PARTIAL:            # bounded time per line, like the partial line
            line = line[-_MAX_PARTIAL:]
        if self._in_traceback:                  # its code lines (`    x = f(lr=1.5)`) are no
            if line[:1].isspace():              # metrics; the unindented exception line ends it
                return
            self._in_traceback = False
        if "Traceback" in line and _TRACEBACK.match(line):
            self._in_traceback = True
            return
        if not _HAS_NUMBER.search(line):
            self._maybe_header(line)
            return
        metrics = parse_line(line, self.patterns)
        if not metrics:
            if self._header is None:
                return
            metrics = self._table_row(line)
            if not metrics:
                return
        bar = _KERAS_COUNT.match(line) if "/" in line else None
        if bar is not None and "epoch" not in metrics:
            if self._bar_total is None:
                self._bar_total = bar.group(1)
            elif bar.group(1) != self._bar_total:
                # another loop's bar in the same epoch: Keras' model.evaluate() after fit().
                # Its `loss` is not this epoch's training loss: it is kept as test_loss.
                metrics = {_evaluated(k): v for k, v in metrics.items()}
        self.names.update(k for k in metrics if k not in TOTALS)
        record = self._record
        if record and self._completes(metrics, record):
            done.append(record)
            self._record = dict(metrics)
            self._bar_total = bar.group(1) if bar is not None else None
        else:
            record.update(metrics)

    def _completes(self, metrics: dict, record: dict) -> bool:
        if "epoch" in self.names:
            return "epoch" in metrics and "epoch" in record and metrics["epoch"] != record["epoch"]
        for key in _EPOCH_KEYS:
            if key in metrics:
                return key in record and metrics[key] != record[key]
        return False

    def _maybe_header(self, line: str) -> None:
        text = _clean(line)
        text = text.replace("|", "  ").strip()
        if not text:
            return
        cells = re.split(r"\s{2,}|\t", text) if ("  " in text or "\t" in text) else text.split()
        if not 2 <= len(cells) <= 32 or not all(_HEADER_TOKEN.fullmatch(c) for c in cells):
            return
        low = text.lower()
        if not any(h in low for h in _HEADER_HINTS):
            return
        names = []
        for cell in cells:
            words = cell.split()
            name, _ = _words_to_name(words) if len(words) > 1 else (_norm(cell), None)
            names.append(name or "")
        self._header = names

    def _table_row(self, line: str) -> dict:
        header = self._header
        assert header is not None
        cells = line.replace("|", " ").split()
        if len(cells) != len(header):
            return {}
        row: dict[str, int | float] = {}
        for name, cell in zip(header, cells):
            m = _ROW_TOKEN.fullmatch(cell)
            if m is None:
                return {}
            if not name or not _valid_name(name):
                continue
            if m.group("n") is not None:
                value = _to_number(m.group("n"))
            elif m.group("t") is not None:
                parts = [_int(p) for p in m.group("t").split(":")]
                if None in parts:                   # over 4300 digits: not a duration
                    continue
                value = 0
                for p in parts:
                    value = value * 60 + p
            else:
                continue
            if value is not None:
                row[name] = value
        return row


def _main(argv: list[str]) -> int:
    """`python -m engine.report [-p REGEX]... [FILE]`: the records a log would give, as JSON."""
    patterns: list[str] = []
    files: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in ("-p", "--pattern"):
            patterns.append(next(it, ""))
        else:
            files.append(arg)
    try:
        parser = OutputParser(patterns)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def show(records: list[dict]) -> None:
        for rec in records:             # as stored: NaN/inf are null (the run is flagged)
            print(json.dumps({k: v if not isinstance(v, float) or math.isfinite(v) else None
                              for k, v in rec.items()}, allow_nan=False))

    stream = open(files[0], encoding="utf-8", errors="replace") if files else sys.stdin
    with stream:
        for chunk in iter(lambda: stream.read(1 << 16), ""):
            show(parser.feed(chunk))
    show(parser.close())
    print(f"names: {' '.join(sorted(parser.names))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
