"""How hprune's data path scales with the number of rows (issue 25): the time and peak memory of each stage
(read, fingerprint, tokenize, cache hit, first training step, score maths, subsets, export), the bytes of
encoded data per example and per token, and `hprune score` end to end up to its first training step, cold
(tokenizing) and warm (the tokenized-data cache found). docs/performance.md ("Scale") records a run.

The data are SYNTHETIC, made by repetition: N rows of the shared sst2/train.jsonl (short single texts),
and of rte/train.jsonl (sentence pairs), repeated with " (copy k)" appended to the (second) text of copy k
so that no two rows are equal. They are written under --work (default /tmp/hprune-scale), never into the repo.

    python benchmarks/scale.py                        # sst2 x 100k and 1M, rte x 100k; minutes
    python benchmarks/scale.py --sizes 100000 --pair-sizes 20000

Each dataset's stages run in one fresh process, in order; a stage's memory is the rise of that process's
peak resident memory over its resident memory when the stage began (Linux: the peak is reset through
/proc/self/clear_refs before each stage). The end-to-end figures come from `hprune score --runs 2
--epochs 1 --threads 1` run by hprune.cli.main in a fresh process that exits at the first training step;
its memory is that process's peak minus the peak of a process that only imports hprune and loads the model.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SUFFIX = " (copy {k})"
MODEL, MAX_LENGTH = "minilm", 128


def synthetic(task: str, column: str, n: int, work: Path) -> Path:
    """`n` rows of the shared task's training file, repeated with a per-copy suffix on `column`."""
    path = work / f"{task}-{n}.jsonl"
    if path.exists():
        return path
    rows = [json.loads(line) for line in (SHARED / task / "train.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(path, "w", encoding="utf-8") as f:
        for k in range(math.ceil(n / len(rows))):
            for row in rows[: n - k * len(rows)]:
                f.write(json.dumps({**row, column: row[column].rstrip() + SUFFIX.format(k=k)}, ensure_ascii=False) + "\n")
    return path


def memory(field: str) -> int:
    """VmRSS or VmHWM (the peak) of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class Stage:
    """Times a block and the rise of the process's peak memory above its memory when the block began."""

    def __init__(self, name: str, results: list):
        self.name, self.results = name, results

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        self.rss, self.t0 = memory("VmRSS"), time.perf_counter()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.results.append({"stage": self.name, "seconds": round(time.perf_counter() - self.t0, 2),
                                 "peak_mb": round((memory("VmHWM") - self.rss) / 2**20, 1)})


def stages(path: str) -> list[dict]:
    """Every stage on one data file, in this process."""
    import numpy as np
    from transformers import AutoTokenizer

    from hprune.config import train_config
    from hprune.data import read_table, write_rows
    from hprune.data.labelled import fingerprint, load_data
    from hprune.dynamics.store import RunDynamics, stack_runs
    from hprune.engine.loop import fine_tune, seed_everything, setup_torch
    from hprune.engine.models import load_model, resolve_model
    from hprune.scores import score_table
    from hprune.subsets import WINNING_TICKET, describe_subsets, find_subset, subset_mask
    from hprune.tasks import get_task

    setup_torch(1)
    out: list[dict] = []
    with Stage("read", out):
        table = read_table(path)
    with Stage("load (columns, labels, fingerprint)", out):
        data = load_data(path, _table=table)
    with Stage("fingerprint alone", out):
        fingerprint(data.texts, data.pairs, [data.label_names[k] for k in data.labels])
    task, tokenizer = get_task(None), AutoTokenizer.from_pretrained(resolve_model(MODEL))
    cache = Path(tempfile.mkdtemp(prefix="hprune-scale-cache-"))
    with Stage("tokenize (cache miss, written)", out):
        encoded = task.encode(tokenizer, data, MAX_LENGTH, cache_dir=cache)
    with Stage("cache hit", out):
        encoded = task.encode(tokenizer, data, MAX_LENGTH, cache_dir=cache)
    arrays = encoded.features
    n, tokens = len(arrays), len(arrays.input_ids)
    out.append({"stage": "encoded data", "bytes_per_example": round(arrays.nbytes / n, 1), "tokens_per_example": round(tokens / n, 1),
                "bytes_per_token": round(arrays.nbytes / tokens, 2), "examples": n})

    class FirstStep(Exception):
        pass

    def stop(*_):
        raise FirstStep

    with Stage("first training step (model loaded)", out):
        seed_everything(0)
        _, model = load_model(MODEL, data.label_names)
        try:
            fine_tune(model, tokenizer, arrays, encoded.targets, train_config(n_examples=n, epochs=1), seed=0, on_step=stop)
        except FirstStep:
            pass
    rng = np.random.default_rng(0)
    runs = []
    for _ in range(6):
        run = RunDynamics.empty(3, n)
        run.correct[:] = rng.random((3, n)) < 0.8
        run.probs[:] = rng.random((3, n))
        runs.append(run)
    with Stage("score maths (6 runs x 3 epochs)", out):
        scores = score_table(**stack_runs(runs), example_ids=data.example_ids, labels=data.labels, label_names=data.label_names)
    with Stage("subsets", out):
        subsets = describe_subsets(scores, 6)
    ids = data.example_ids[subset_mask(scores["h_score"].to_numpy(), find_subset(subsets, WINNING_TICKET)["removed_h"])]
    with Stage("export (winning ticket, jsonl)", out):
        write_rows(data, ids, cache / "export.jsonl")
    return out


def first_step(argv: list[str]) -> None:
    """`hprune score` (hprune.cli.main) until its first training step; prints the peak memory, then exits."""
    import hprune.phase1.run as run
    from hprune.cli import main

    real = run.fine_tune

    def until_first_step(*args, on_step, **kw):
        def step(*a):
            on_step(*a)
            print(json.dumps({"peak_mb": round(memory("VmHWM") / 2**20, 1)}), flush=True)
            os._exit(0)
        return real(*args, on_step=step, **kw)

    run.fine_tune = until_first_step
    main(argv)


def model_only() -> None:
    from hprune.engine.models import load_model

    load_model(MODEL, ["0", "1"])
    print(json.dumps({"peak_mb": round(memory("VmHWM") / 2**20, 1)}), flush=True)


def child(args: list[str], env: dict | None = None) -> tuple[dict, float]:
    """The last JSON line a fresh `python scale.py ARGS` prints, and its wall time."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("{", "["))]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"scale.py {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1]), seconds


def end_to_end(path: Path, work: Path, model_mb: float) -> list[dict]:
    """`hprune score` to its first step with an empty tokenized-data cache, then again with it filled."""
    cache = tempfile.mkdtemp(prefix="hprune-scale-e2e-", dir=work)
    rows = []
    for label in ("cold (tokenizes)", "warm (cache hit)"):
        out = tempfile.mkdtemp(prefix="out-", dir=work)
        argv = ["score", "--train", str(path), "--model", MODEL, "--runs", "2", "--epochs", "1", "--threads", "1", "--out", out, "--quiet"]
        got, seconds = child(["--first-step", json.dumps(argv)], {"HPRUNE_CACHE_DIR": cache})
        rows.append({"stage": f"hprune score to first step, {label}", "seconds": round(seconds, 1),
                     "peak_mb": round(got["peak_mb"] - model_mb, 1)})
    return rows


def table(name: str, rows: list[dict]) -> str:
    lines = [f"{name}", "| stage | seconds | peak MB above start |", "|---|---:|---:|"]
    for r in rows:
        if "seconds" in r:
            lines.append(f"| {r['stage']} | {r['seconds']} | {r['peak_mb']} |")
    enc = next(r for r in rows if r["stage"] == "encoded data")
    lines.append(f"\nencoded: {enc['bytes_per_example']} bytes/example, {enc['tokens_per_example']} tokens/example, {enc['bytes_per_token']} bytes/token")
    return "\n".join(lines)


def estimate(small: list[dict], n_small: int, large: list[dict], n_large: int, n: int) -> str:
    """Each timed stage at `n` rows, on the straight line through its two measured sizes."""
    lines = [f"| stage | seconds at {n:,} | peak MB at {n:,} |", "|---|---:|---:|"]
    for a, b in zip(small, large):
        if "seconds" in a:
            at = lambda key: round(b[key] + (b[key] - a[key]) / (n_large - n_small) * (n - n_large), 1)
            lines.append(f"| {a['stage']} | {at('seconds')} | {at('peak_mb')} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="rows of repeated sst2 (single texts)")
    p.add_argument("--pair-sizes", type=int, nargs="*", default=[100_000], help="rows of repeated rte (text pairs)")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hprune-scale")
    p.add_argument("--no-end-to-end", action="store_true", help="leave out the `hprune score` runs")
    p.add_argument("--stages", help=argparse.SUPPRESS)
    p.add_argument("--first-step", help=argparse.SUPPRESS)
    p.add_argument("--model-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.stages:
        print(json.dumps(stages(args.stages)))
        return
    if args.first_step:
        first_step(json.loads(args.first_step))
        return
    if args.model_only:
        model_only()
        return
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {Path('/proc/loadavg').read_text().strip()}; {os.cpu_count()} cores")
    model_mb = child(["--model-only"])[0]["peak_mb"]
    print(f"a process that imports hprune and loads {MODEL}: {model_mb} MB peak")
    data = [("sst2", "text", n) for n in args.sizes] + [("rte", "text_b", n) for n in args.pair_sizes]
    results = {}
    for task, column, n in data:
        path = synthetic(task, column, n, args.work)
        rows, _ = child(["--stages", str(path)])
        if not args.no_end_to_end:
            rows += end_to_end(path, args.work, model_mb)
        results[f"{task} x {n:,} (synthetic, repeated)"] = rows
        print(table(f"\n{task} x {n:,} rows (synthetic, by repetition), {path.stat().st_size / 2**20:.0f} MB; "
                    f"load average now {Path('/proc/loadavg').read_text().split()[0]}", rows), flush=True)
    if len(args.sizes) >= 2:
        (n_a, a), (n_b, b) = [(n, results[f"sst2 x {n:,} (synthetic, repeated)"]) for n in sorted(args.sizes)[-2:]]
        print(f"\nestimate for sst2 x 10,000,000 from the slopes between {n_a:,} and {n_b:,} rows:\n" + estimate(a, n_a, b, n_b, 10_000_000))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
