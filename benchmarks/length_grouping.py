"""Does the default loop cost accuracy? hprune's defaults (length-grouped batches with dynamic padding,
fused AdamW, flushed denormals, fp32) against the plain loop (random batches, `--no-length-grouping`),
same seeds, same data, on small real tasks. Prints each fine-tune's metric and the mean ± std per loop.

    python benchmarks/length_grouping.py                  # trec-1k and sst2-2k, 3 seeds each
    python benchmarks/length_grouping.py --threads 1      # when another job shares the CPU (metrics are unchanged)

Every fine-tune runs through `hprune train`; results are kept under --work and not recomputed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hprune.cli import main as hprune
from hprune.io import read_json
from reproduce import DATA, REPO, sample_rows

# name -> (train file, eval file, rows: reproduce.sample_rows' ("head", n) or seeded ("random", n))
TASKS = {
    "trec-1k": ("trec/train.jsonl", "trec/test.jsonl", ("head", 1000)),
    "sst2-2k": ("sst2/train.jsonl", "sst2/validation.jsonl", ("random", 2000)),
}
LOOPS = {"length-grouped (default)": [], "random batches (plain)": ["--no-length-grouping"]}


def sample(task: str, work: Path) -> Path:
    train_rel, _, rows = TASKS[task]
    return sample_rows(DATA / train_rel, rows, work / "data" / f"{task}.jsonl")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--seeds", default="1000,1001,1002")
    p.add_argument("--threads", type=int)
    p.add_argument("--work", type=Path, default=REPO / "runs" / "length-grouping")
    args = p.parse_args(argv)
    threads = ["--threads", str(args.threads)] if args.threads else []
    rows = []
    for task in args.tasks.split(","):
        train = sample(task, args.work)
        for loop, flags in LOOPS.items():
            for seed in args.seeds.split(","):
                out = args.work / task / ("plain" if flags else "default") / seed
                if not (out / "metrics.json").is_file():
                    rc = hprune(["train", "--train", str(train), "--eval", str(DATA / TASKS[task][1]), "--model", "minilm",
                                 "--seed", seed, "--out", str(out), "--quiet", *threads, *flags])
                    if rc:
                        return rc
                m = read_json(out / "metrics.json")["metrics"]
                rows.append({"task": task, "loop": loop, "seed": int(seed), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                             "train_seconds": m["train_seconds"]})
    frame = pd.DataFrame(rows)
    print(frame.to_string(index=False))
    summary = frame.groupby(["task", "loop"], sort=False).agg(
        accuracy=("accuracy", lambda v: f"{v.mean():.4f} ± {np.std(v, ddof=1):.4f}"),
        macro_f1=("macro_f1", lambda v: f"{v.mean():.4f} ± {np.std(v, ddof=1):.4f}"),
        train_seconds=("train_seconds", "mean"))
    print(summary.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
