"""Tables for the terminal: the H histogram per class and the subset table with per-class counts."""
from __future__ import annotations

import pandas as pd


def h_histogram(scores: pd.DataFrame, n_runs: int) -> pd.DataFrame:
    """Examples per H value (rows) and class (columns), with a total column."""
    table = pd.crosstab(scores["h_score"], scores["label"].astype(str)).reindex(range(n_runs + 1), fill_value=0)
    table["total"] = table.sum(axis=1)
    table.index.name = "H"
    return table


def format_h_histogram(scores: pd.DataFrame, n_runs: int) -> str:
    return "H-score histogram (examples per H value and class):\n" + h_histogram(scores, n_runs).to_string()


def subset_frame(subsets: list[dict]) -> pd.DataFrame:
    rows = []
    for s in sorted(subsets, key=lambda s: -s["size"]):
        rows.append(
            {
                "name": s["name"] + (" *" if s.get("paper") else ""),
                "removed H": ",".join(map(str, s["removed_h"])),
                "size": s["size"],
                "% of train": f"{100 * s['fraction']:.1f}",
                **s["per_class"],
            }
        )
    return pd.DataFrame(rows)


def format_subset_table(subsets: list[dict]) -> str:
    note = "\n(* = in the paper's family for R = 6)" if any(s.get("paper") for s in subsets) else ""
    return "automatic subsets (per-class counts on the right):\n" + subset_frame(subsets).to_string(index=False) + note
