"""Tables for the terminal (the H histogram per class, the subset table with per-class counts, a
comparison's summary) and a comparison's report: report.md and a self-contained report.html, with the
plots as PNG files beside them (embedded in the HTML as data URIs, so the page travels alone)."""
from __future__ import annotations

import base64
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from .diagnostics import learned_rule
from .io import atomic_path
from .metrics import ALL_METRICS, TEST_PREFIX
from .subsets import RANDOM, WINNING_TICKET

FULL = "full"  # the method and subset name of the fine-tunes on the full training set
METRIC_LABELS = {"accuracy": "accuracy", "macro_f1": "macro F1", "mcc": "MCC", "exact": "exact match", "f1": "F1"}


def metrics_in(frame: pd.DataFrame, suffix: str = "") -> list[str]:
    """The metrics a results (suffix "") or summary ("_mean") table holds: the task's, then their test twins."""
    return [m for m in (*ALL_METRICS, *(TEST_PREFIX + m for m in ALL_METRICS)) if f"{m}{suffix}" in frame.columns]


def metric_label(metric: str) -> str:
    base = metric.removeprefix(TEST_PREFIX)
    return METRIC_LABELS[base] if base == metric else f"test {METRIC_LABELS[base]}"


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


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (task, method, subset), in the order of the results."""
    groups = results.groupby(["task", "method", "subset"], sort=False)
    summary = groups[["size", "fraction"]].first()
    summary["seeds"] = groups.size()
    for column in (*metrics_in(results), "train_seconds"):
        summary[f"{column}_mean"] = groups[column].mean()
        summary[f"{column}_std"] = groups[column].std()
    if "load" in results:  # the conditions of those times; not in results written before they were recorded
        summary["load_mean"] = groups["load"].mean().astype(float)
    return summary.reset_index()


def _mean_std(summary: pd.DataFrame, column: str) -> list[str]:
    return [f"{m:.3f} ± {s:.3f}" if pd.notna(s) else f"{m:.3f}" for m, s in zip(summary[f"{column}_mean"], summary[f"{column}_std"])]


def full_set_text(summary: pd.DataFrame, metric: str) -> str:
    full = summary[summary["method"] == FULL]
    return "; ".join(
        f"full training set ({size} examples): {METRIC_LABELS[metric]} {cell} over {n} seeds"
        for size, cell, n in zip(full["size"], _mean_std(full, metric), full["seeds"])
    )


def metric_table(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Subsets (largest first) by method, `mean ± std` of one metric: the equal-size comparison at a glance."""
    rows = summary[summary["method"] != FULL]
    cells = rows.assign(cell=_mean_std(rows, metric)).pivot(index="subset", columns="method", values="cell")
    sizes = rows.drop_duplicates("subset").set_index("subset")
    table = cells.reindex(index=sizes.index, columns=rows["method"].unique())
    table.insert(0, "size", sizes["size"])
    table.insert(1, "% of train", (100 * sizes["fraction"]).round(1))
    return table.reset_index().rename_axis(columns=None)


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Every (method, subset) with all metrics as `mean ± std` over seeds."""
    return pd.DataFrame({
        "method": summary["method"], "subset": summary["subset"], "size": summary["size"],
        "% of train": (100 * summary["fraction"]).round(1), "seeds": summary["seeds"],
        **{metric_label(m): _mean_std(summary, m) for m in metrics_in(summary, "_mean")},
        "train s": summary["train_seconds_mean"].round(1),
        **({"load": summary["load_mean"].round(2)} if "load_mean" in summary else {}),
    })


def versus_random(gap: float, random_std: float) -> str:
    """A method's mean minus random's at equal size, judged against random's seed std: "above" or "below" when
    the gap is larger than that spread, else "within"; "one seed" when random has no spread to judge by."""
    if pd.isna(random_std):
        return "one seed"
    return "above" if gap > random_std else "below" if gap < -random_std else "within"


AGAINST_RANDOM = ("against random at equal size: each method's mean minus random's, above or below when the gap is larger "
                  "than random's seed std, else within")


def against_random_table(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Subsets (largest first) by method: `+gap (verdict)` against random at the same subset or budget, for the
    rows where random ran; empty when it ran nowhere."""
    rows = summary[summary["method"] != FULL]
    random = rows[rows["method"] == RANDOM].set_index("subset")
    judged = rows[(rows["method"] != RANDOM) & rows["subset"].isin(random.index)]
    if judged.empty:
        return pd.DataFrame()
    base = random.loc[judged["subset"]]
    gaps = judged[f"{metric}_mean"].to_numpy() - base[f"{metric}_mean"].to_numpy()
    cells = [f"{g:+.3f} ({versus_random(g, s)})" for g, s in zip(gaps, base[f"{metric}_std"])]
    table = judged.assign(cell=cells).pivot(index="subset", columns="method", values="cell")
    sizes = judged.drop_duplicates("subset").set_index("subset")
    table = table.reindex(index=sizes.index, columns=judged["method"].unique())
    table.insert(0, "size", sizes["size"])
    return table.reset_index().rename_axis(columns=None)


def format_summary(summary: pd.DataFrame, metric: str) -> str:
    text = (f"{full_set_text(summary, metric)}\n{METRIC_LABELS[metric]} at equal size (mean ± std over seeds):\n"
            + metric_table(summary, metric).to_string(index=False))
    versus = against_random_table(summary, metric)
    return text if versus.empty else f"{text}\n{METRIC_LABELS[metric]} {AGAINST_RANDOM}:\n{versus.to_string(index=False)}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def learning_frame(report: dict) -> pd.DataFrame:
    """The scoring runs' learning report as a table, one row per run."""
    return pd.DataFrame([
        {"run": r["run"], "seed": r["seed"], "train accuracy per epoch": " ".join(f"{a:.3f}" for a in r["train_accuracy"]),
         **({"train balanced accuracy per epoch": " ".join(f"{a:.3f}" for a in r["train_balanced_accuracy"])}
            if "train_balanced_accuracy" in r else {}),
         "eval accuracy per epoch": " ".join(f"{a:.3f}" for a in r.get("eval_accuracy", []))}
        for r in report["runs"]
    ])


def _axes(figsize: tuple[float, float]):
    """A figure and its axes. No pyplot: the Agg canvas, no global state, no display; matplotlib is
    imported only when a report is drawn, so the terminal commands start fast."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def plot_h_histogram(scores: pd.DataFrame, n_runs: int, path: Path) -> Path:
    """Stacked bars per class: a class piled at H = 0 or H = R (so missing from the subsets) shows at once."""
    table = h_histogram(scores, n_runs).drop(columns="total")
    fig, ax = _axes((7.5, 4.2))
    for h in (0, n_runs):
        ax.axvspan(h - 0.5, h + 0.5, color="0.9", lw=0)
    bottom = np.zeros(len(table))
    for name in table.columns:
        ax.bar(table.index, table[name], bottom=bottom, label=name, width=0.8)
        bottom += table[name].to_numpy()
    ax.set_xticks(range(n_runs + 1))
    ax.set(xlabel="H-score (runs in which the example was right in every epoch)", ylabel="examples",
           title="H-score histogram per class (grey: removed by the winning ticket)")
    ax.legend(title="class", fontsize="small", ncol=max(1, len(table.columns) // 12), loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, path)


def plot_tradeoff(summary: pd.DataFrame, metric: str, path: Path) -> Path:
    """Metric against subset size for every method (error bars: std over seeds), the full set as a line and band."""
    mean, std = f"{metric}_mean", f"{metric}_std"
    fig, ax = _axes((7.5, 4.5))
    for _, full in summary[summary["method"] == FULL].iterrows():
        spread = np.nan_to_num(full[std])
        ax.axhspan(full[mean] - spread, full[mean] + spread, color="0.88", lw=0)
        ax.axhline(full[mean], color="0.35", ls="--", label=f"full set ({full['size']} examples)")
    rows = summary[summary["method"] != FULL]
    n_methods, percent = rows["method"].nunique(), 100 * rows["fraction"]
    step = 0.008 * (percent.max() - percent.min() or percent.max())  # methods side by side, so error bars don't hide each other
    for k, (method, group) in enumerate(rows.groupby("method", sort=False)):
        group = group.sort_values("fraction")
        ax.errorbar(100 * group["fraction"] + step * (k - (n_methods - 1) / 2), group[mean], yerr=group[std].fillna(0),
                    marker="o", ms=4, capsize=3, label=method)
    for fraction in rows.loc[rows["subset"] == WINNING_TICKET, "fraction"].unique():
        ax.axvline(100 * fraction, color="k", ls=":", lw=1)
        ax.annotate("winning ticket", (100 * fraction, 1), xycoords=("data", "axes fraction"), xytext=(4, -12),
                    textcoords="offset points", fontsize="small")
    ax.set(xlabel="training examples kept (% of the full set)", ylabel=METRIC_LABELS[metric],
           title=f"{METRIC_LABELS[metric]} at equal subset size (mean ± std over seeds)")
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_data_map(scores: pd.DataFrame, n_runs: int, path: Path) -> Path:
    """Dataset Cartography's map coloured by H: where the H levels sit among easy, ambiguous and hard."""
    from matplotlib import colormaps

    fig, ax = _axes((6.5, 5))
    points = ax.scatter(scores["variability"], scores["confidence"], c=scores["h_score"], s=7, alpha=0.7, linewidths=0,
                        cmap=colormaps["viridis"].resampled(n_runs + 1), vmin=-0.5, vmax=n_runs + 0.5, rasterized=True)
    fig.colorbar(points, ax=ax, ticks=range(n_runs + 1), label="H-score")
    ax.set(xlabel="variability (std of the gold-label probability)", ylabel="confidence (mean gold-label probability)",
           title="data map coloured by H")
    return _save(fig, path)


def write_report(out: Path, *, results: pd.DataFrame, scores: pd.DataFrame, subsets: list[dict], manifest: dict,
                 info: dict, metric: str) -> Path:
    """report.md and report.html in `out`, with the plots as PNG files beside them; returns the HTML's path."""
    n_runs = manifest["config"]["runs"]
    summary = summarize(results)
    settings = ", ".join(f"{k} {v}" for k, v in info["config"].items())
    learning = manifest.get("learning_report")
    tested = f" (the test columns: {info['test_source']})" if info.get("test_source") else ""
    versus = against_random_table(summary, metric)
    sections = [
        ("Setup", [f"Model {info['model']}; training data {info['train_source']} ({len(scores)} examples, fingerprint "
                   f"{info['fingerprint']}); evaluation data {info['eval_source']}{tested}; seeds {', '.join(map(str, info['seeds']))}; "
                   f"{'class-balanced ' if info['class_balanced'] else ''}baselines at the size of each subset; {settings}. "
                   f"Scoring: {manifest['config']['model']}, R = {n_runs} runs, E = {manifest['config']['epochs']}."]),
        (f"Size–{METRIC_LABELS[metric]} trade-off", [
            full_set_text(summary, metric), plot_tradeoff(summary, metric, out / "tradeoff.png"), metric_table(summary, metric)]),
        *([(f"Against random at equal size ({METRIC_LABELS[metric]})", [_sentence(AGAINST_RANDOM), versus])] if not versus.empty else []),
        ("All results (mean ± std over seeds)", [summary_table(summary)]),
        ("H-scores and the automatic subsets", [
            plot_h_histogram(scores, n_runs, out / "h_histogram.png"), h_histogram(scores, n_runs).rename_axis(columns=None).reset_index(),
            "The automatic subsets (* = in the paper's family for R = 6), with per-class counts:", subset_frame(subsets)]),
        ("Data map", [plot_data_map(scores, n_runs, out / "data_map.png")]),
    ]
    if learning:
        sections.append(("Learning report of the scoring runs", [
            _sentence(learned_rule(learning)),
            learning_frame(learning), *(f"Warning: {w}" for w in manifest.get("warnings", []))]))
    title = f"hprune comparison: {info['task']}"
    markdown = _render(sections, heading=lambda t: f"## {t}", text=str, image=lambda p: f"![{p.stem}]({p.name})", table=_markdown_table)
    html = _render(sections, heading=lambda t: f"<h2>{escape(t)}</h2>", text=lambda t: f"<p>{escape(t)}</p>", image=_img_tag,
                   table=lambda f: f.to_html(index=False, border=0, na_rep=""))
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n\n".join([f"# {title}", *markdown]) + "\n", encoding="utf-8")
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{escape(title)}</title><style>{_CSS}</style></head>\n"
                       f"<body>\n<h1>{escape(title)}</h1>\n" + "\n".join(html) + "\n</body></html>\n", encoding="utf-8")
    return out / "report.html"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}"
        "th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:1em 0}")


def _render(sections, *, heading, text, image, table) -> list[str]:
    """Sections of blocks (str: a paragraph, Path: a PNG, DataFrame: a table) in one output format."""
    out = []
    for title, blocks in sections:
        out.append(heading(title))
        out += [table(b) if isinstance(b, pd.DataFrame) else image(b) if isinstance(b, Path) else text(b) for b in blocks]
    return out


def _img_tag(path: Path) -> str:
    return f'<img alt="{path.stem}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def _markdown_table(frame: pd.DataFrame) -> str:
    rows = [list(map(str, frame.columns)), *(["" if pd.isna(v) else str(v) for v in row] for row in frame.itertuples(index=False))]
    lines = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join([lines[0], "|" + "---|" * frame.shape[1], *lines[1:]])
