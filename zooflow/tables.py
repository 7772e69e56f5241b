"""Tables for the report: small HTML pages the Snakemake report shows inline (a CSV would only be
offered as a download). The CSV and JSON files stay the ones to compute with."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from zooflow.summary import percent

_STYLE = (
    "<style>body{font-family:sans-serif;font-size:13px}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
    "text-align:right}th{background:#eee}</style>"
)


def write_table(table: pd.DataFrame, path: str | Path, title: str, note: str = "") -> None:
    """``table`` as an HTML page with a title and, under it, a note on how to read it."""
    if table.empty:
        body = "<p>No rows: nothing to show yet.</p>"
    else:
        body = table.to_html(index=False, na_rep="n/a", float_format=lambda v: f"{v:.4g}")
    text = (
        f"<html><head><meta charset='utf-8'>{_STYLE}</head><body>"
        f"<h3>{html.escape(title)}</h3>"
        + (f"<p>{html.escape(note)}</p>" if note else "")
        + body
        + "</body></html>\n"
    )
    Path(path).write_text(text)


def labels_saved_table(
    saved: Mapping[str, Mapping[str, Mapping]], baseline: str = "random"
) -> pd.DataFrame:
    """One row per strategy and metric from ``labels_saved``'s numbers, savings in percent."""
    rows = [
        {
            "strategy": strategy,
            "metric": numbers.get("description", metric),
            f"{baseline}'s final score": numbers.get(f"{baseline}_final"),
            f"labels {baseline} had": numbers.get(f"{baseline}_labels"),
            "labels needed to reach it": numbers.get(f"{strategy}_labels_needed"),
            "labels saved": percent(numbers.get("labels_saved")),
            "90% interval over seeds": _interval(numbers.get("labels_saved_interval")),
            "acquired labels saved": percent(numbers.get("acquired_labels_saved")),
            "note": "; ".join(
                n for n in (numbers.get("note", ""), numbers.get("interval_note", "")) if n
            ),
        }
        for strategy, by_metric in saved.items()
        for metric, numbers in by_metric.items()
    ]
    return pd.DataFrame(rows)


def _interval(bounds) -> str:
    if not bounds:
        return "n/a"
    return " to ".join("never" if b is None else percent(b) for b in bounds)


def evaluation_table(summary: Mapping) -> pd.DataFrame:
    """The evaluation summary (``summary.json``) as figure / value rows."""
    rows = []
    for key, value in summary.items():
        if isinstance(value, Mapping):
            rows += [{"figure": f"{key}: {k}", "value": v} for k, v in value.items()]
        else:
            rows.append({"figure": key, "value": value})
    table = pd.DataFrame(rows, columns=["figure", "value"])
    table["value"] = [
        "n/a"
        if v is None or (isinstance(v, float) and not np.isfinite(v))
        else (f"{v:.4g}" if isinstance(v, float) else str(v))
        for v in table["value"]
    ]
    return table
