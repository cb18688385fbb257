"""Reproduce the paper's claim per task with hprune's own commands, resumably, and publish the evidence.

Per task: `hprune score` (R=6, E=3), then `hprune compare` (3 seeds) of the full set, the winning ticket
and smaller automatic subsets against baselines at equal size. Every step is cached on disk by hprune
(finished runs and fine-tunes are never redone), so a task too long for one sitting finishes over
several: run the same command again. Then the evidence is copied under docs/results/<task>/ and the
tables docs/results.md and docs/results.json are rebuilt from every task that is complete.

    python benchmarks/reproduce.py --tasks trec               # run (or resume) TREC
    python benchmarks/reproduce.py --tasks trec,cola,rte,sst2-20k
    python benchmarks/reproduce.py --publish-only             # rebuild docs/ from what is finished
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hprune.cli import main as hprune
from hprune.io import write_json
from hprune.scoring import load_scoring
from hprune.subsets import subset_mask

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DOCS = REPO / "docs"

# task -> (train file, eval file, metric, sample or None, paper's number); a sample is ("head", n): the first
# n rows, or ("stratified", n): n rows with the label shares. Samples are named as such, never as the task.
TASKS = {
    "trec": ("trec/train.jsonl", "trec/test.jsonl", "accuracy", None, None),
    "trec-1k": ("trec/train.jsonl", "trec/test.jsonl", "accuracy", ("head", 1000), None),
    "cola": ("cola/train.jsonl", "cola/validation.jsonl", "mcc", None, None),
    "rte": ("rte/train.jsonl", "rte/validation.jsonl", "accuracy", None, None),
    "sst2": ("sst2/train.jsonl", "sst2/validation.jsonl", "accuracy", None, {"kept": 0.24, "full": 95.79, "winning_ticket": 95.80}),
    "sst2-20k": ("sst2/train.jsonl", "sst2/validation.jsonl", "accuracy", ("stratified", 20_000), {"kept": 0.24, "full": 95.79, "winning_ticket": 95.80}),
}
METHODS = "hscore,random,ambiguous,forgetting,el2n"


def sample_rows(source: Path, sample: tuple[str, int], dest: Path, seed: int = 0) -> Path:
    """("head", n): the first n rows, unchanged. ("stratified", n): n rows with the label shares, in file
    order, with their original row as `source_row`."""
    if dest.is_file():
        return dest
    kind, n = sample
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "head":
        dest.write_text("".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
        return dest
    frame = pd.read_json(source, lines=True)
    frame["source_row"] = np.arange(len(frame))
    picked = frame.groupby("label", group_keys=False).apply(lambda g: g.sample(round(n * len(g) / len(frame)), random_state=seed))
    picked.sort_values("source_row").to_json(dest, orient="records", lines=True, force_ascii=False)
    return dest


def run_task(task: str, work: Path, subsets: str, seeds: int, threads: list[str]) -> None:
    train_rel, eval_rel, metric, sample, _ = TASKS[task]
    train = DATA / train_rel
    if sample:
        train = sample_rows(train, sample, work / "data" / f"{task}.jsonl")
    scoring, compare = work / task / "scoring", work / task / "compare"
    _check(hprune(["score", "--train", str(train), "--eval", str(DATA / eval_rel), "--runs", "6", "--epochs", "3", "--out", str(scoring), *threads]))
    _, _, family = load_scoring(scoring)
    names = [n for n in subsets.split(",") if any(s["name"] == n and s["size"] > 0 for s in family)]
    _check(hprune(["compare", str(scoring), "--eval", str(DATA / eval_rel), "--subsets", ",".join(names), "--methods", METHODS,
                   "--seeds", str(seeds), "--metric", metric, "--task", task, "--out", str(compare), *threads]))


def publish(task: str, work: Path) -> dict | None:
    """Copy a finished task's evidence under docs/results/<task>/ and return its results.json entry."""
    scoring, compare = work / task / "scoring", work / task / "compare"
    if not (scoring / "scores.parquet").is_file():
        return None
    manifest, scores, family = load_scoring(scoring)
    dest = DOCS / "results" / task
    dest.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(dest / "scores.parquet", index=False, compression="zstd")
    h = scores["h_score"].to_numpy()
    write_json(dest / "subsets.json", [{**s, "example_ids": scores["example_id"].to_numpy()[subset_mask(h, s["removed_h"])].tolist()}
                                       for s in family])
    shutil.copy2(scoring / "manifest.json", dest / "manifest.json")
    if not (compare / "results.csv").is_file():
        return None  # phase 1 is published; the table waits for phase 2
    for name in ("report.md", "report.html", "tradeoff.png", "h_histogram.png", "data_map.png", "results.csv", "summary.csv"):
        shutil.copy2(compare / name, dest / name)
    _, _, metric, sample, paper = TASKS[task]
    results = pd.read_csv(compare / "results.csv")

    def stats(method, subset):
        rows = results[(results["method"] == method) & (results["subset"] == subset)]
        vals = rows[metric].to_numpy()
        return {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, "seeds": rows["seed"].tolist(),
                "values": vals.tolist(), "train_seconds": float(rows["train_seconds"].mean()), "size": int(rows["size"].iloc[0])} if len(rows) else None

    wt = next(s for s in family if s["name"] == "winning-ticket")
    entry = {
        "task": task, "metric": metric, "train_size": int(manifest["n_examples"]), "sample_of_full_task": bool(sample),
        "runs": manifest["config"]["runs"], "epochs": manifest["config"]["epochs"], "model": manifest["config"]["model"],
        "full": stats("full", "full"),
        "winning_ticket": {"fraction": wt["fraction"], **(stats("hscore", "winning-ticket") or {})},
        "random_same_size": stats("random", "winning-ticket"), "ambiguous_same_size": stats("ambiguous", "winning-ticket"),
        "other_subsets": {s: {m: stats(m, s) for m in sorted(results[results["subset"] == s]["method"].unique())}
                          for s in results["subset"].unique() if s not in ("full", "winning-ticket")},
        "all_wt_methods": {m: stats(m, "winning-ticket") for m in sorted(results[results["subset"] == "winning-ticket"]["method"].unique())},
        "phase1_seconds": manifest["phase1_train_seconds"],
        "full_finetune_seconds": stats("full", "full")["train_seconds"],
        "wt_finetune_seconds": (stats("hscore", "winning-ticket") or {}).get("train_seconds"),
        "paper": paper, "warnings": manifest.get("warnings", []),
    }
    return entry


def write_tables(entries: list[dict]) -> None:
    write_json(DOCS / "results.json", entries)
    fmt = lambda s: f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}" if s else "–"
    lines = [
        "# Results: does the winning ticket hold for minilm?", "",
        "Produced by `python benchmarks/reproduce.py --tasks <task>` (hprune score R=6, E=3, then hprune compare with 3 "
        "seeds); per-example scores, subset index lists, manifests and reports are under `docs/results/<task>/`. "
        "Metric ×100, mean ± std over the 3 phase-2 seeds. Random and ambiguous are taken at the winning ticket's size. "
        "Times are seconds of training (phase 1: summed over its runs) on this project's 2-core CPU and depend on what else "
        "ran there: each task's manifest.json has the per-run figures, and the closing note of the session that ran it the load.", "",
        "| task | metric | train size | full set | WT kept | WT | random (same size) | ambiguous (same size) | forgetting | EL2N | paper (RoBERTa-large: kept, full → WT) | phase 1 s | full fine-tune s | WT fine-tune s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        paper = f"{e['paper']['kept']:.0%}: {e['paper']['full']} → {e['paper']['winning_ticket']}" if e["paper"] else "–"
        name = e["task"] + (" (a sample, not the full task)" if e["sample_of_full_task"] else "")
        lines.append(
            f"| {name} | {e['metric']} | {e['train_size']} | {fmt(e['full'])} | {e['winning_ticket']['fraction']:.1%} | {fmt(e['winning_ticket'])} | "
            f"{fmt(e['random_same_size'])} | {fmt(e['ambiguous_same_size'])} | {fmt(e['all_wt_methods'].get('forgetting'))} | "
            f"{fmt(e['all_wt_methods'].get('el2n'))} | {paper} | {e['phase1_seconds']:.0f} | {e['full_finetune_seconds']:.0f} | "
            f"{e['wt_finetune_seconds'] or 0:.0f} |"
        )
    lines += ["", "## Smaller automatic subsets", "", "| task | subset | size | " + " | ".join(METHODS.split(",")) + " |",
              "|---|---|---|" + "---|" * len(METHODS.split(","))]
    for e in entries:
        for s, by_method in e["other_subsets"].items():
            size = next(v["size"] for v in by_method.values() if v)
            lines.append(f"| {e['task']} | {s} | {size} | " + " | ".join(fmt(by_method.get(m)) for m in METHODS.split(",")) + " |")
    lines += ["", "## Where the subset loses", ""]
    for e in entries:
        wt, full, rnd = e["winning_ticket"], e["full"], e["random_same_size"]
        verdict = "matches or beats" if wt["mean"] >= full["mean"] - full["std"] else "loses to"
        lines.append(f"- {e['task']}: the winning ticket ({wt['fraction']:.0%} of the data) {verdict} the full set "
                     f"({fmt(wt)} vs {fmt(full)}); random at the same size: {fmt(rnd)}.")
    (DOCS / "results.md").write_text("\n".join(lines) + "\n")


def _check(rc: int) -> None:
    if rc != 0:
        sys.exit(rc)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="trec", help=f"comma-separated, from: {', '.join(TASKS)}")
    p.add_argument("--work", default=str(REPO / "runs" / "reproduce"), help="where scorings and comparisons live (not committed)")
    p.add_argument("--subsets", default="winning-ticket,016,0156", help="automatic subsets to compare (empty ones are skipped)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch threads per process (1 when other jobs share the CPU)")
    p.add_argument("--publish-only", action="store_true", help="only rebuild docs/ from finished tasks")
    args = p.parse_args(argv)
    work = Path(args.work)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        p.error(f"unknown task {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    if not args.publish_only:
        for task in tasks:
            run_task(task, work, args.subsets, args.seeds, ["--threads", str(args.threads)] if args.threads else [])
    entries = [e for e in (publish(t, work) for t in TASKS) if e]
    write_tables(entries)
    print(f"published {', '.join(e['task'] for e in entries) or 'nothing yet'} -> docs/results.md, docs/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
