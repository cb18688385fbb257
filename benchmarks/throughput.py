"""Training throughput of hprune's fine-tuning loop next to transformers.Trainer, the cost of recording
dynamics, the bytes stored per (run, epoch, example), peak memory, and the share of this machine's
matmul peak the loop reaches (issue 5). Everything runs in one process, on samples of the real SST-2
and RTE training files, with minilm. docs/performance.md says what is measured and how.

    python benchmarks/throughput.py --quick     # < 2 minutes on an idle 2-core machine
    python benchmarks/throughput.py             # larger samples, more steps, repeated
    python benchmarks/throughput.py --extras    # also: torch threads, torch.compile, eval batch size

The last line is always `sst2 speedup_vs_hf_trainer=<x> rte speedup_vs_hf_trainer=<y> recording_overhead_pct=<z>`.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator  # noqa: E402

from hprune import load_data  # noqa: E402
from hprune.defaults import train_config  # noqa: E402
from hprune.dynamics import FIELDS, DynamicsRecorder, RunDynamics  # noqa: E402
from hprune.models import load_classifier  # noqa: E402
from hprune.training import encode, fine_tune, predict, seed_everything, setup_torch  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TASKS = ("sst2", "rte")
MODEL = "minilm"
HF_GLUE = {"max_length": 128, "batch_size": 32, "lr": 2e-5}  # run_glue.py: pad_to_max_length, fp32
SST2_PROTOCOL = {"examples": 67_349, "runs": 6, "epochs": 3, "budget_hours": 4.0}
HF_LOOP, HPRUNE_FP32, HPRUNE_BF16 = "transformers.Trainer (pad 128, fp32)", "hprune fine_tune (defaults, fp32)", "hprune fine_tune (defaults, --bf16)"


@dataclass(frozen=True)
class Sizes:
    hf_steps: int  # transformers.Trainer steps per measurement (batch 32, padded to 128)
    hprune_steps: int  # hprune steps per measurement (at the default batch size for the task)
    repeats: int  # measurements per variant, in alternating order; the median is reported
    overhead_steps: int  # SST-2 steps per recording on/off run
    overhead_pairs: int  # on/off pairs, interleaved on-off-off-on-...
    matmul_n: int  # square matrix size for the matmul peak
    extras_steps: int  # steps per --extras measurement


QUICK = Sizes(hf_steps=4, hprune_steps=12, repeats=1, overhead_steps=16, overhead_pairs=3, matmul_n=1536, extras_steps=10)
FULL = Sizes(hf_steps=12, hprune_steps=60, repeats=3, overhead_steps=60, overhead_pairs=6, matmul_n=3072, extras_steps=30)


# ---------------------------------------------------------------- measuring
def reset_peak_rss() -> None:
    """Reset the kernel's resident-set high-water mark (and with it ru_maxrss), so each row gets its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux or not allowed: peaks then accumulate over the process


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@dataclass
class Steps:
    """Per-step timestamps with each step's examples and tokens. Figures are for the steady state: the
    first step (allocations, kernel selection) is left out; the interval ending at stamp k is step k's."""

    stamps: list[float]
    examples: list[int]
    real_tokens: list[int]  # non-padding tokens
    padded_tokens: list[int]  # tokens the model computed on, padding included

    def total(self, field: str) -> int:
        return sum(getattr(self, field)[1:])

    @property
    def seconds(self) -> float:
        return self.stamps[-1] - self.stamps[0]

    def step_seconds(self) -> np.ndarray:
        return np.diff(self.stamps)


class StepClock:
    """`on_step` hook for hprune's fine_tune: stamps each step (it is called between forward and backward),
    counts its tokens, and passes the step on to `recorder.record` if a DynamicsRecorder is given, timing it."""

    def __init__(self, lengths: np.ndarray, recorder: DynamicsRecorder | None = None):
        self.lengths, self.recorder = lengths, recorder
        self.steps = Steps([], [], [], [])
        self.record_seconds = 0.0

    def __call__(self, epoch, idx, logits, labels) -> None:
        s = self.steps
        s.stamps.append(time.perf_counter())
        n = self.lengths[idx]
        s.examples.append(len(idx))
        s.real_tokens.append(int(n.sum()))
        s.padded_tokens.append(len(idx) * int(n.max()))
        if self.recorder is not None:
            started = time.perf_counter()
            self.recorder.record(epoch, idx, logits, labels)
            self.record_seconds += time.perf_counter() - started


class TrainerClock(TrainerCallback):
    """The same stamps for transformers.Trainer: every step is batch x max_length tokens."""

    def __init__(self, batch_size: int, max_length: int, mean_real_length: float):
        self.per_step = (batch_size, round(batch_size * mean_real_length), batch_size * max_length)
        self.steps = Steps([], [], [], [])

    def on_step_end(self, args, state, control, **kwargs):
        s = self.steps
        s.stamps.append(time.perf_counter())
        for field, value in zip(("examples", "real_tokens", "padded_tokens"), self.per_step):
            getattr(s, field).append(value)


def matmul_peak(dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """Best FLOP/s of an n x n @ n x n torch.matmul (2 n^3 FLOPs) over `repeats` timed calls."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def non_embedding_parameters(model) -> int:
    """Parameters that take part in matrix multiplies: embedding tables are looked up, not multiplied."""
    return sum(p.numel() for name, p in model.named_parameters() if ".embeddings." not in name)


# ---------------------------------------------------------------- one task
class TaskBench:
    """One task's sample, tokenized both ways, and a pristine model that every measurement copies."""

    def __init__(self, task: str, n_examples: int, data_dir: Path):
        data = load_data(str(data_dir / task / "train.jsonl"))
        self.task, self.full_size = task, len(data)
        rows = np.random.default_rng(0).permutation(len(data))[:n_examples]
        self.texts = [data.texts[i] for i in rows]
        self.pairs = [data.pairs[i] for i in rows] if data.pairs else None
        self.labels = data.labels[rows]
        self.tokenizer, self.model = load_classifier(MODEL, data.label_names)
        self.features = encode(self.tokenizer, self.texts, self.pairs, HF_GLUE["max_length"])
        self.lengths = np.array([len(f["input_ids"]) for f in self.features])
        # hprune's defaults for this task's full training set (batch 16 below 20k examples), one epoch here.
        self.config = replace(train_config(n_examples=self.full_size, model=MODEL), epochs=1)
        self.params = non_embedding_parameters(self.model)

    def fresh_model(self):
        seed_everything(0)
        return copy.deepcopy(self.model)

    def hf_trainer(self, steps: int) -> Steps:
        """transformers.Trainer as run_glue.py sets it up: padded to 128 at preprocessing, default collator,
        batch 32, fp32, lr 2e-5, otherwise default TrainingArguments; no eval, no saving, no reporting."""
        from datasets import Dataset

        torch.set_flush_denormal(False)  # the Trainer gets torch's defaults, not hprune's settings
        torch.use_deterministic_algorithms(False)
        n = steps * HF_GLUE["batch_size"]
        pairs = self.pairs[:n] if self.pairs else None
        encoded = self.tokenizer(self.texts[:n], pairs, padding="max_length", max_length=HF_GLUE["max_length"], truncation=True)
        dataset = Dataset.from_dict({**encoded, "label": self.labels[:n].tolist()})
        clock = TrainerClock(HF_GLUE["batch_size"], HF_GLUE["max_length"], float(self.lengths[:n].mean()))
        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(output_dir=out, per_device_train_batch_size=HF_GLUE["batch_size"], learning_rate=HF_GLUE["lr"],
                                     max_steps=steps, save_strategy="no", report_to="none", disable_tqdm=True, seed=0)
            trainer = Trainer(model=self.fresh_model(), args=args, train_dataset=dataset, processing_class=self.tokenizer,
                              data_collator=default_data_collator, callbacks=[clock])
            trainer.train()
        return clock.steps

    def hprune(self, steps: int, *, bf16: bool = False, record: bool = True, model=None) -> StepClock:
        """hprune's fine_tune with hprune's defaults and settings, recording dynamics as scoring does."""
        setup_torch()
        n = steps * self.config.batch_size
        clock = StepClock(self.lengths[:n], DynamicsRecorder(RunDynamics.empty(1, n)) if record else None)
        fine_tune(model or self.fresh_model(), self.tokenizer, self.features[:n], self.labels[:n], replace(self.config, bf16=bf16),
                  seed=0, on_step=clock)
        return clock


@dataclass
class Row:
    task: str
    loop: str
    batch: int
    examples_per_s: float
    real_tokens_per_step: float
    padded_tokens_per_step: float
    tflops: float  # 6 x non-embedding parameters x padded tokens / second
    peak_fraction: float  # of the matmul peak in the loop's compute dtype
    peak_rss_mib: float


def measure(bench: TaskBench, sizes: Sizes, peaks: dict[str, float]) -> list[Row]:
    """The three loops on one task, each measured `repeats` times in alternating order; medians."""
    variants = {
        HF_LOOP: (lambda: bench.hf_trainer(sizes.hf_steps), HF_GLUE["batch_size"], "fp32"),
        HPRUNE_FP32: (lambda: bench.hprune(sizes.hprune_steps).steps, bench.config.batch_size, "fp32"),
        HPRUNE_BF16: (lambda: bench.hprune(sizes.hprune_steps, bf16=True).steps, bench.config.batch_size, "bf16"),
    }
    results: dict[str, list[tuple[Steps, float]]] = {name: [] for name in variants}
    for repeat in range(sizes.repeats):
        for name in list(variants)[:: 1 if repeat % 2 == 0 else -1]:
            reset_peak_rss()
            steps = variants[name][0]()
            results[name].append((steps, peak_rss_mib()))
    rows = []
    for name, (_, batch, dtype) in variants.items():
        runs = [steps for steps, _ in results[name]]
        rate = statistics.median(s.total("examples") / s.seconds for s in runs)
        padded_rate = statistics.median(s.total("padded_tokens") / s.seconds for s in runs)
        steps_counted = sum(len(s.stamps) - 1 for s in runs)
        flops = 6 * bench.params * padded_rate
        rows.append(Row(bench.task, name, batch, rate, sum(s.total("real_tokens") for s in runs) / steps_counted,
                        sum(s.total("padded_tokens") for s in runs) / steps_counted, flops / 1e12, flops / peaks[dtype],
                        max(rss for _, rss in results[name])))
    return rows


def recording_overhead(bench: TaskBench, sizes: Sizes) -> dict:
    """hprune's loop with recording on and off on the same batches from the same initial weights, in
    interleaved order (on, off, off, on, ...). Every step is paired with the same step of the paired run,
    which computes on exactly the same batch; the overhead is the median of the paired relative step-time
    differences. Also the time spent inside DynamicsRecorder.record as a share of the step time."""
    diffs, direct, last = [], [], None
    for pair in range(sizes.overhead_pairs):
        order = (True, False) if pair % 2 == 0 else (False, True)
        runs = {on: bench.hprune(sizes.overhead_steps, record=on) for on in order}
        on, off = runs[True].steps.step_seconds(), runs[False].steps.step_seconds()
        diffs.extend((on - off) / off)
        direct.append(runs[True].record_seconds / runs[True].steps.seconds)
        last = runs[True]
    return {"median_pct": 100 * float(np.median(diffs)), "iqr_pct": 100 * float(np.subtract(*np.percentile(diffs, [75, 25]))),
            "pairs": len(diffs), "direct_pct": 100 * statistics.median(direct),
            "step_ms": 1000 * float(np.median(last.steps.step_seconds())), "dynamics": last.recorder.dynamics}


def dynamics_bytes(recorded: RunDynamics) -> dict:
    """Bytes per (run, epoch, example): in memory (the fields' item sizes) and on disk, for the recorded
    sample and for a run shaped like the full SST-2 protocol (np.savez does not compress, so values do not matter)."""
    full = RunDynamics.empty(SST2_PROTOCOL["epochs"], SST2_PROTOCOL["examples"])
    out = {"in_memory": sum(getattr(recorded, f).itemsize for f in FIELDS)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, dyn in (("sample_file", recorded), ("sst2_run_file", full)):
            path = Path(tmp) / f"{name}.npz"
            dyn.save(path)
            out[name] = path.stat().st_size / dyn.correct.size
            out[name + "_bytes"] = path.stat().st_size
    return out


# ---------------------------------------------------------------- --extras
def extras(bench: TaskBench, eval_dir: Path, sizes: Sizes) -> list[tuple[str, str]]:
    """Cheap checks of settings that are not defaults: torch threads, torch.compile, eval batch size."""
    out = []
    threads = torch.get_num_threads()
    for n in sorted({1, threads, 2 * threads}):
        torch.set_num_threads(n)
        steps = bench.hprune(sizes.extras_steps).steps
        out.append((f"fine_tune {bench.task}, torch threads {n}", f"{steps.total('examples') / steps.seconds:.1f} examples/s"))
    torch.set_num_threads(threads)
    model = bench.fresh_model()
    model.compile(dynamic=True)
    started = time.perf_counter()
    steps = bench.hprune(sizes.extras_steps, model=model).steps
    out.append((f"fine_tune {bench.task}, torch.compile(dynamic=True)",
                f"{steps.total('examples') / steps.seconds:.1f} examples/s after the first step; "
                f"first step (compiling) {steps.stamps[0] - started:.0f} s"))
    data = load_data(str(eval_dir / bench.task / "validation.jsonl"))
    features = encode(bench.tokenizer, data.texts, data.pairs, HF_GLUE["max_length"])
    model = bench.fresh_model()
    predict(model, bench.tokenizer, features[:64])  # warm-up
    for batch in (32, 64, 128, 256, 512):
        reset_peak_rss()
        started = time.perf_counter()
        predict(model, bench.tokenizer, features, batch_size=batch)
        out.append((f"predict {bench.task} validation ({len(features)}), batch {batch}",
                    f"{len(features) / (time.perf_counter() - started):.0f} examples/s, peak RSS {peak_rss_mib():.0f} MiB"))
    return out


# ---------------------------------------------------------------- report
def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                if line.startswith("Model name")), platform.processor())
    return f"{os.cpu_count()} CPUs ({cpu}), torch {torch.__version__} ({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()})"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small samples and few steps (< 2 minutes on an idle 2-core machine)")
    parser.add_argument("--extras", action="store_true", help="also check torch threads, torch.compile and the eval batch size")
    parser.add_argument("--data", type=Path, default=DATA, help=f"folder with <task>/train.jsonl (default {DATA})")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    print(f"machine: {machine()}")

    peaks = {"fp32": matmul_peak(torch.float32, sizes.matmul_n), "bf16": matmul_peak(torch.bfloat16, sizes.matmul_n)}
    print(f"matmul peak (n={sizes.matmul_n}, best of 5): fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    benches, rows = {}, []
    for task in TASKS:
        sample = max(sizes.hf_steps * HF_GLUE["batch_size"], sizes.hprune_steps * 32, sizes.overhead_steps * 32)
        benches[task] = TaskBench(task, sample, args.data)
        rows += measure(benches[task], sizes, peaks)
        print(f"{task}: measured ({time.perf_counter() - started:.0f} s so far)", flush=True)
    overhead = recording_overhead(benches["sst2"], sizes)
    stored = dynamics_bytes(overhead["dynamics"])

    print()
    print(table(["task", "loop", "batch", "examples/s", "real / padded tokens per step", "TFLOP/s (padded)", "of matmul peak", "peak RSS MiB"],
                [[r.task, r.loop, r.batch, f"{r.examples_per_s:.1f}", f"{r.real_tokens_per_step:.0f} / {r.padded_tokens_per_step:.0f}",
                  f"{r.tflops:.3f}", f"{100 * r.peak_fraction:.1f}%", f"{r.peak_rss_mib:.0f}"] for r in rows]))
    print(f"\nFLOPs = 6 x {benches['sst2'].params / 1e6:.1f}M non-embedding parameters x padded tokens (attention's own FLOPs not counted); "
          f"fraction of the fp32 matmul peak for fp32 rows, of the bf16 peak for --bf16 rows.")
    print(f"recording overhead (sst2, batch {benches['sst2'].config.batch_size}, median step {overhead['step_ms']:.0f} ms): "
          f"paired on/off median {overhead['median_pct']:+.2f}% of step time (IQR {overhead['iqr_pct']:.1f} points, {overhead['pairs']} step pairs); "
          f"time inside DynamicsRecorder.record {overhead['direct_pct']:.2f}% of step time")
    print(f"dynamics stored per (run, epoch, example): {stored['in_memory']} bytes in memory; on disk {stored['sample_file']:.2f} bytes "
          f"(recorded sample, {stored['sample_file_bytes']} bytes) and {stored['sst2_run_file']:.3f} bytes (one SST-2 run, 3 x 67,349: "
          f"{stored['sst2_run_file_bytes'] / 1e6:.2f} MB)")

    rate = {(r.task, r.loop): r.examples_per_s for r in rows}
    sst2_rate = rate["sst2", HPRUNE_FP32]
    total = SST2_PROTOCOL["examples"] * SST2_PROTOCOL["runs"] * SST2_PROTOCOL["epochs"]
    hours = total / sst2_rate / 3600
    print(f"full SST-2 phase 1 ({SST2_PROTOCOL['examples']:,} x {SST2_PROTOCOL['runs']} runs x {SST2_PROTOCOL['epochs']} epochs = {total:,} "
          f"example-steps) at {sst2_rate:.1f} examples/s: {hours:.2f} h of training, "
          f"{'fits' if hours < SST2_PROTOCOL['budget_hours'] else 'does NOT fit'} under {SST2_PROTOCOL['budget_hours']:.0f} hours")
    if args.extras:
        print("\n" + table(["extra check", "result"], [list(x) for x in extras(benches["sst2"], args.data, sizes)]))
    print(f"\nwall time {time.perf_counter() - started:.0f} s, process peak RSS {peak_rss_mib():.0f} MiB since the last reset")
    speedup = {task: rate[task, HPRUNE_FP32] / rate[task, HF_LOOP] for task in TASKS}
    print(f"sst2 speedup_vs_hf_trainer={speedup['sst2']:.2f} rte speedup_vs_hf_trainer={speedup['rte']:.2f} "
          f"recording_overhead_pct={overhead['median_pct']:.2f}")


if __name__ == "__main__":
    main()
