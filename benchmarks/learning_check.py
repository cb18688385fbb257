"""Do hprune's defaults learn every task in ../shared/data? Two scoring runs (the fewest hprune scores
with) with the defaults on a random sample of each task's training set (small data is the hard case: fewer steps before epoch 1 ends), and
its learning report: training accuracy per epoch against the trivial baseline, and evaluation accuracy
per epoch where the task has an evaluation file (a random sample of it, to keep evaluation cheap).

    python benchmarks/learning_check.py                       # every task, 500 training rows each
    python benchmarks/learning_check.py --tasks mr,subj --rows 2000 --threads 1

Each check runs through `hprune score`; finished ones are kept under --work and not recomputed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hprune.cli import main as hprune
from hprune.diagnostics import learned, learning_report
from hprune.dynamics.store import RunDynamics
from hprune.artifacts import load_scoring
from reproduce import DATA, REPO, sample_rows

# task -> (training file, evaluation file or None); SQuAD v2: the training part of our by-article split
TASKS = {
    "trec": ("trec/train.jsonl", "trec/test.jsonl"),
    "sst2": ("sst2/train.jsonl", "sst2/validation.jsonl"),
    "cola": ("cola/train.jsonl", "cola/validation.jsonl"),
    "rte": ("rte/train.jsonl", "rte/validation.jsonl"),
    "mr": ("mr/train.jsonl", None),
    "subj": ("subj/train.jsonl", None),
    "openbookqa": ("openbookqa/train.jsonl", "openbookqa/test.jsonl"),
    "arc_easy": ("arc_easy/train.jsonl", "arc_easy/validation.jsonl"),
    "squad_v2": ("squad_v2/validation.jsonl", None),
}
EVAL_ROWS = 500


def learning_report_again(out: Path, manifest: dict, scores: pd.DataFrame) -> dict:
    """The learning report of a classification scoring folder, recomputed from its recorded dynamics."""
    correct = np.stack([RunDynamics.load(out / "dynamics" / f"run-{r}.npz").correct for r in range(manifest["config"]["runs"])])
    labels = pd.Categorical(scores.sort_values("example_id")["label"], categories=manifest["label_names"]).codes
    return learning_report(correct, labels, seeds=manifest["config"]["seeds"],
                           eval_accuracy=[info.get("eval_accuracy", []) for info in manifest["runs_info"]])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--rows", type=int, default=500, help="training rows sampled per task")
    p.add_argument("--threads", type=int)
    p.add_argument("--work", type=Path, default=REPO / "runs" / "learning-check")
    args = p.parse_args(argv)
    rows = []
    for task in args.tasks.split(","):
        train_rel, eval_rel = TASKS[task]
        train = sample_rows(DATA / train_rel, ("random", args.rows), args.work / "data" / f"{task}-{args.rows}.jsonl")
        evalf = sample_rows(DATA / eval_rel, ("random", EVAL_ROWS), args.work / "data" / f"{task}-eval.jsonl") if eval_rel else None
        out = args.work / f"{task}-{args.rows}"
        if not (out / "manifest.json").is_file():
            rc = hprune(["score", "--train", str(train), *(["--eval", str(evalf)] if evalf else []), "--model", "minilm", "--runs", "2",
                         "--out", str(out), "--quiet", *(["--threads", str(args.threads)] if args.threads else [])])
            if rc:
                return rc
        manifest, scores, _ = load_scoring(out)
        report = manifest["learning_report"]
        if manifest["task_type"] == "classification" and "balanced_threshold" not in report:
            report = learning_report_again(out, manifest, scores)  # written before the report had balanced accuracy
        for run in report["runs"]:
            rows.append({"task": task, "run": run["run"], "type": manifest["task_type"], "rows": manifest["n_examples"], "epochs": manifest["config"]["epochs"],
                         "baseline": report["majority_baseline"], "learned above": report["learned_threshold"],
                         "train acc per epoch": " ".join(f"{a:.3f}" for a in run["train_accuracy"]),
                         "balanced": " ".join(f"{a:.3f}" for a in run.get("train_balanced_accuracy", [])) or "–",
                         "eval per epoch": " ".join(f"{a:.3f}" for a in run.get("eval_accuracy", [])) or "–",
                         "learned": learned(report, run), "seconds": round(manifest["phase1_train_seconds"])})
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
