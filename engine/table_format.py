"""Results tables as text: markdown, CSV, LaTeX (booktabs) and JSON, formatted one way.

Accuracies that are fractions in [0, 1] are shown as percentages with 2 decimals; losses
with 4 significant digits; the best row is bold in markdown and LaTeX. CSV and JSON carry
the raw numbers, for scripts.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from gridrun.engine.matrix import format_value
from gridrun.engine.results import ResultTable, Row, Stat, is_accuracy, is_loss

FORMATS = ("md", "csv", "latex", "json")


def _as_percent(table: ResultTable, name: str) -> bool:
    """An accuracy whose every value in the table is a fraction is shown in percent."""
    if not is_accuracy(name):
        return False
    values = [s.mean for s in _stats(table, name) if s.mean is not None]
    return bool(values) and all(0 <= v <= 1 for v in values)


def _stats(table: ResultTable, name: str) -> list[Stat]:
    return [r.headline if name == table.metric else r.columns[name] for r in table.rows]


def number(name: str, value: float | None, percent: bool) -> str:
    if value is None:
        return "-"
    if name == "params":
        return f"{value:,.0f}"
    if percent:
        return f"{100 * value:.2f}"
    if is_accuracy(name):
        return f"{value:.2f}"
    return f"{value:.4g}"


def stat_text(name: str, stat: Stat, percent: bool, with_std: bool = True) -> str:
    if stat.mean is None:
        return "-"
    text = number(name, stat.mean, percent)
    if with_std and stat.n > 1:
        text += " ± " + number(name, stat.std, percent)
    return text


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


def cells(table: ResultTable) -> tuple[list[str], list[list[str]]]:
    """Header and body as display strings (markdown, LaTeX, the terminal)."""
    metric = table.metric or "metric"
    percent = {n: _as_percent(table, n) for n in [metric, *table.columns]}
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
        line += [stat_text(metric, row.headline, percent[metric]), str(row.headline.n),
                 "-" if row.best_epoch is None else f"{round(row.best_epoch, 1):g}"]
        line += [stat_text(c, row.columns[c], percent[c], with_std=False) for c in table.columns]
        line += [duration(row.wall_s)]
        line += [status_text(row.statuses)] if show_status else []
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
