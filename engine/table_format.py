"""Results tables as text: markdown, CSV, LaTeX (booktabs) and JSON, formatted one way.

One rule for every number shown (`Column` holds it for one column):
- a column shows every value with the same number of decimals, so they line up and compare;
- a spread is shown with its mean's precision (`1.936 ± 0.004`, never `1.936 ± 0.00396`);
- an accuracy whose every value in the table is a fraction in [0, 1] is shown in percent,
  accuracies with 2 decimals; other metrics with 4 significant digits on the column's largest
  value (more decimals where the smallest would otherwise read 0.000);
- the best epoch is a mean over seeds, with one decimal only when the seeds disagree.
The best row is bold in markdown and LaTeX. CSV and JSON carry the raw numbers, for scripts.
"""
from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from gridrun.engine.matrix import format_value
from gridrun.engine.results import ResultTable, Row, Stat, is_accuracy

FORMATS = ("md", "csv", "latex", "json")


SIGNIFICANT = 4     # digits of a metric's largest value in a column
MAX_DECIMALS = 6


def _as_percent(table: ResultTable, name: str) -> bool:
    """An accuracy whose every value in the table is a fraction is shown in percent."""
    if not is_accuracy(name):
        return False
    values = [s.mean for s in _stats(table, name) if s.mean is not None]
    return bool(values) and all(0 <= v <= 1 for v in values)


def _stats(table: ResultTable, name: str) -> list[Stat]:
    return [r.headline if name == table.metric else r.columns[name] for r in table.rows]


def decimals_for(name: str, means: list[float], percent: bool) -> int:
    """How many decimals every value of one column is shown with."""
    if name == "params":
        return 0
    if percent or is_accuracy(name):
        return 2
    sizes = [abs(m) for m in means if m and math.isfinite(m)]
    if not sizes:
        return SIGNIFICANT - 1
    largest = SIGNIFICANT - 1 - math.floor(math.log10(max(sizes)))
    smallest = 1 - math.floor(math.log10(min(sizes)))   # two significant digits of the least
    return max(0, min(MAX_DECIMALS, max(largest, smallest)))


class Column:
    """The formatting of one metric column of a table."""

    def __init__(self, table: ResultTable, name: str):
        self.name = name
        self.percent = _as_percent(table, name)
        self.scale = 100.0 if self.percent else 1.0
        means = [s.mean * self.scale for s in _stats(table, name) if s.mean is not None]
        self.decimals = decimals_for(name, means, self.percent)

    def number(self, value: float | None) -> str:
        if value is None:
            return "-"
        if not math.isfinite(value):
            return str(value)
        grouping = "," if self.name == "params" else ""
        text = f"{value * self.scale:{grouping}.{self.decimals}f}"
        return text[1:] if text.startswith("-") and not text.strip("-0.,") else text  # no -0.00

    def stat(self, stat: Stat, with_std: bool = True) -> str:
        if stat.mean is None:
            return "-"
        text = self.number(stat.mean)
        if with_std and stat.n > 1 and stat.std is not None:
            text += " ± " + self.number(stat.std)
        return text


def epoch_text(row: Row) -> str:
    """The best epoch: whole when every seed agrees, else a mean with one decimal."""
    if row.best_epoch is None:
        return "-"
    if row.epochs_agree:
        return f"{row.best_epoch:.0f}"
    return f"{row.best_epoch:.1f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.2f}h"


def status_text(statuses: dict[str, int]) -> str:
    order = ("done", "running", "queued", "failed", "cancelled")
    return ", ".join(f"{statuses[s]} {s}" for s in order if statuses.get(s))


def others_text(statuses: dict[str, int]) -> str:
    """What a row had besides its done runs (which its n counts): `1 failed, 1 cancelled`."""
    return status_text({k: v for k, v in statuses.items() if k != "done"})


def cells(table: ResultTable) -> tuple[list[str], list[list[str]]]:
    """Header and body as display strings (markdown, LaTeX, the terminal)."""
    metric = table.metric or "metric"
    formats = {n: Column(table, n) for n in [metric, *table.columns]}
    percent = {n: f.percent for n, f in formats.items()}
    staged = any(r.chosen for r in table.rows)
    show_status = any(set(r.statuses) != {"done"} for r in table.rows)
    show_flags = any(r.flags for r in table.rows)
    unit = " (%)" if percent.get(metric) else ""
    header = (["chosen"] if staged else []) + list(table.keys) + [
        f"{metric}{unit}" + (" (last)" if table.pick == "last" else ""), "n",
        "best epoch" if table.pick == "best" else "epoch"]
    header += [c + (" (%)" if percent[c] else "") for c in table.columns]
    header += ["time/run"] + (["status"] if show_status else []) + (["flags"] if show_flags else [])
    body = []
    for row in table.rows:
        line = (["✓" if row.chosen else ""] if staged else [])
        line += [format_value(row.config[k]) for k in table.keys]
        line += [formats[metric].stat(row.headline), str(row.headline.n), epoch_text(row)]
        line += [formats[c].stat(row.columns[c], with_std=False) for c in table.columns]
        line += [duration(row.wall_s)]
        line += [others_text(row.statuses)] if show_status else []
        line += [", ".join(row.flags)] if show_flags else []
        body.append(line)
    return header, body


def _is_best(table: ResultTable, row: Row) -> bool:
    return table.best is row


def markdown(table: ResultTable) -> str:
    header, body = cells(table)

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", r"\|") for v in values) + " |"
    out = [line(header), "|" + "|".join("---" for _ in header) + "|"]
    for row, values in zip(table.rows, body):
        if _is_best(table, row):
            values = [f"**{v}**" if v not in ("", "-") else v for v in values]
        out.append(line(values))
    return "\n".join(out) + "\n"


def latex(table: ResultTable) -> str:
    header, body = cells(table)

    def esc(text: str) -> str:
        replaced = []
        for ch in text:
            replaced.append({"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&",
                             "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\~{}",
                             "^": r"\^{}", "±": r"$\pm$", "✓": r"$\checkmark$"}.get(ch, ch))
        return "".join(replaced)
    cols = "".join("r" if h in ("n", "best epoch") else "l" for h in header)
    lines = [r"\begin{tabular}{" + cols + "}", r"\toprule",
             " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
    for row, values in zip(table.rows, body):
        texts = [esc(v) for v in values]
        if _is_best(table, row):
            texts = [r"\textbf{" + t + "}" if t not in ("", "-") else t for t in texts]
        lines.append(" & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def records(table: ResultTable) -> list[dict[str, Any]]:
    out = []
    for row in table.rows:
        record = dict(row.config)
        record.update({"metric": table.metric, "mean": row.headline.mean, "std": row.headline.std,
                       "n": row.headline.n, "best_epoch": row.best_epoch})
        for name, stat in row.columns.items():
            record[name] = stat.mean
        record.update({"wall_s": row.wall_s, "status": row.statuses, "flags": row.flags,
                       "run_ids": row.run_ids, "chosen": row.chosen})
        out.append(record)
    return out


def to_csv(table: ResultTable) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    head = [*table.keys, "metric", "mean", "std", "n", "best_epoch", *table.columns, "wall_s",
            "status", "flags"]
    writer.writerow(head)
    for record in records(table):
        values = [record[k] for k in table.keys]
        values = [format_value(v) if isinstance(v, (bool, list, dict)) else v for v in values]
        writer.writerow([*values, record["metric"], record["mean"], record["std"], record["n"],
                         record["best_epoch"], *[record[c] for c in table.columns],
                         record["wall_s"], status_text(record["status"]),
                         " ".join(record["flags"])])
    return buf.getvalue()


def to_json(tables: list[ResultTable]) -> str:
    payload = [{"sweep": t.sweep, "stage": t.stage, "metric": t.metric, "mode": t.mode,
                "pick": t.pick, "keys": t.keys, "rows": records(t)} for t in tables]
    return json.dumps(payload[0] if len(payload) == 1 else payload, indent=2) + "\n"


def render(tables: list[ResultTable], fmt: str) -> str:
    """One or several tables (one per stage) in a format."""
    if fmt == "json":
        return to_json(tables)
    one = {"md": markdown, "csv": to_csv, "latex": latex}[fmt]
    parts = []
    for t in tables:
        title = _title(t) if len(tables) > 1 else None
        if title and fmt == "md":
            parts.append(f"### {title}\n\n")
        elif title and fmt == "latex":
            parts.append(f"% {title}\n")
        elif title and fmt == "csv":
            parts.append(f"# {title}\n")
        parts.append(one(t))
        if len(tables) > 1:
            parts.append("\n")
    return "".join(parts)


def _title(table: ResultTable) -> str:
    varying = ", ".join(table.keys) or "-"
    return f"{table.sweep}, stage {table.stage}: {varying}"
