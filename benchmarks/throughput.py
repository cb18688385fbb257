"""Training throughput of hprune's fine-tuning loop next to transformers.Trainer, the cost of recording
dynamics, the bytes stored per (run, epoch, example), peak memory, and the share of this machine's
matmul peak the loop reaches (issue 5). Everything runs in one process, on the CPU, on samples of the
real SST-2 and RTE training files, with minilm. docs/performance.md says what is measured and how.

    python benchmarks/throughput.py --quick     # < 2 minutes on an idle 2-core machine
    python benchmarks/throughput.py             # larger samples, more steps, repeated
    python benchmarks/throughput.py --extras    # also: torch threads, torch.compile, eval batch size

The last line is always `sst2 speedup_vs_hf_trainer=<x> rte speedup_vs_hf_trainer=<y> recording_overhead_pct=<z>
sst2 speedup_vs_grouped_trainer=<a> rte speedup_vs_grouped_trainer=<b>` (one line): the grouped Trainer is set up as a
speed-aware user would (length-grouped batches, dynamic padding, hprune's batch size) and raced against hprune's loop
at the same grouping (docs/performance.md).
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    DataCollatorWithPadding,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

from hprune import load_data  # noqa: E402
from hprune.config import train_config  # noqa: E402
from hprune.dynamics.record import DynamicsRecorder  # noqa: E402
from hprune.dynamics.store import FIELDS, RunDynamics  # noqa: E402
from hprune.engine.models import count_parameters, load_classifier  # noqa: E402
from hprune.engine.loop import MEGABATCH, fine_tune, predict, seed_everything, setup_torch  # noqa: E402
from hprune.data import tokenize  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TASKS = ("sst2", "rte")
MODEL = "minilm"
HF_GLUE = {"max_length": 128, "batch_size": 32, "lr": 2e-5}  # run_glue.py: pad_to_max_length, fp32
SST2_PROTOCOL = {"examples": 67_349, "runs": 6, "epochs": 3, "budget_hours": 4.0}
HF_LOOP, HPRUNE_FP32, HPRUNE_BF16 = "transformers.Trainer (pad 128, fp32)", "hprune fine_tune (defaults, fp32)", "hprune fine_tune (defaults, --bf16)"
HF_GROUPED = "transformers.Trainer (grouped by length, dynamic padding, fp32)"
HPRUNE_POOLED = "hprune fine_tune (defaults, fp32, a 50-batch pool)"  # the grouped Trainer's match: both sort 50 batches


@dataclass(frozen=True)
class Sizes:
    hf_steps: int  # transformers.Trainer steps per measurement (batch 32, padded to 128)
    hprune_steps: int  # hprune steps per measurement (at the default batch size for the task)
    bf16_steps: int  # the same with --bf16, measured once (far slower on CPUs without native bf16 matrix units)
    bf16_tasks: tuple[str, ...]  # the tasks that get a --bf16 row
    repeats: int  # measurements of the fp32 loops, in alternating order; the median is reported
    overhead_steps: int  # SST-2 steps per recording on/off run
    overhead_pairs: int  # pairs of runs, one recording the even steps and one the odd (recording_overhead)
    matmul_n: int  # square matrix size for the matmul peak
    extras_steps: int  # steps per --extras measurement


QUICK = Sizes(hf_steps=3, hprune_steps=10, bf16_steps=2, bf16_tasks=("sst2",), repeats=1,
              overhead_steps=12, overhead_pairs=2, matmul_n=1024, extras_steps=8)
FULL = Sizes(hf_steps=10, hprune_steps=60, bf16_steps=4, bf16_tasks=TASKS, repeats=3,
             overhead_steps=60, overhead_pairs=4, matmul_n=2048, extras_steps=30)


# ---------------------------------------------------------------- measuring
def reset_peak_rss() -> None:
    """Hand freed heap back to the OS and reset the kernel's resident-set high-water mark (and with it
    ru_maxrss), so that each measurement gets its own peak rather than the process's so far."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux/glibc or not allowed: peaks then accumulate over the process


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


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
    counts its tokens, and passes the step on to `recorder.record` if a DynamicsRecorder is given, timing
    that call; `parity` 0 or 1 records only the even or the odd steps (None: every step)."""

    def __init__(self, lengths: np.ndarray, recorder: DynamicsRecorder | None = None, parity: int | None = None):
        self.lengths, self.recorder, self.parity = lengths, recorder, parity
        self.steps = Steps([], [], [], [])
        self.record_seconds: list[float] = []  # one per recorded step

    def __call__(self, epoch, idx, logits, labels) -> None:
        s = self.steps
        step = len(s.stamps)
        s.stamps.append(time.perf_counter())
        n = self.lengths[idx]
        s.examples.append(len(idx))
        s.real_tokens.append(int(n.sum()))
        s.padded_tokens.append(len(idx) * int(n.max()))
        if self.recorder is not None and (self.parity is None or step % 2 == self.parity):
            started = time.perf_counter()
            self.recorder.record(epoch, idx, logits, labels)
            self.record_seconds.append(time.perf_counter() - started)


class CountingCollator:
    """DataCollatorWithPadding that also queues each batch's real and padded token counts for TrainerClock
    (the Trainer collates a step's batch just before the step, so the queue is read in order)."""

    def __init__(self, tokenizer):
        self.pad = DataCollatorWithPadding(tokenizer)
        self.counts: list[tuple[int, int, int]] = []

    def __call__(self, features):
        batch = self.pad(features)
        mask = batch["attention_mask"]
        self.counts.append((mask.shape[0], int(mask.sum()), mask.numel()))
        return batch


class TrainerClock(TrainerCallback):
    """The same stamps for transformers.Trainer: every step computes batch x max_length tokens; its real
    tokens are counted as batch x the sample's mean length (the sampler's draw is not visible here)."""

    def __init__(self, batch_size: int, max_length: int, mean_real_length: float, collator: CountingCollator | None = None):
        self.per_step = (batch_size, round(batch_size * mean_real_length), batch_size * max_length)
        self.collator = collator  # with dynamic padding: the exact counts of each collated batch
        self.steps = Steps([], [], [], [])

    def on_step_end(self, args, state, control, **kwargs):
        s = self.steps
        s.stamps.append(time.perf_counter())
        counts = self.collator.counts.pop(0) if self.collator else self.per_step
        for field, value in zip(("examples", "real_tokens", "padded_tokens"), counts):
            getattr(s, field).append(value)


def matmul_peak(n: int, repeats: int = 5, seconds: float = 1.0) -> dict[str, float]:
    """Best FLOP/s of an n x n @ n x n torch.matmul (2 n^3 FLOPs) in fp32 and bf16: a warm-up call, then
    `repeats` timed calls or as many as `seconds` allows (bf16 crawls on CPUs without bf16 units; if only
    the warm-up fits, it counts)."""
    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        times, deadline = [], time.perf_counter() + seconds
        while not times or (len(times) <= repeats and time.perf_counter() < deadline):
            started = time.perf_counter()
            torch.matmul(a, b)
            times.append(time.perf_counter() - started)
        peaks[name] = 2 * n**3 / min(times[1:] or times)
    return peaks


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
        self.lengths = tokenize(self.tokenizer, self.texts, self.pairs, HF_GLUE["max_length"]).lengths()
        # hprune's defaults for this task's full training set (batch 16 below 20k examples), one epoch here.
        self.config = replace(train_config(n_examples=self.full_size, model_parameters=count_parameters(MODEL)), epochs=1)
        self.params = non_embedding_parameters(self.model)

    def head(self, n: int):
        """The first n examples of the sample, tokenized as scoring does."""
        return tokenize(self.tokenizer, self.texts[:n], self.pairs[:n] if self.pairs else None, HF_GLUE["max_length"])

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
        with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pin_memory.*")  # a default that does nothing on a CPU
            args = TrainingArguments(output_dir=out, per_device_train_batch_size=HF_GLUE["batch_size"], learning_rate=HF_GLUE["lr"],
                                     max_steps=steps, save_strategy="no", report_to="none", disable_tqdm=True, seed=0,
                                     use_cpu=True)  # the benchmark is of CPU training, as hprune's loop runs here
            trainer = Trainer(model=self.fresh_model(), args=args, train_dataset=dataset, processing_class=self.tokenizer,
                              data_collator=default_data_collator, callbacks=[clock])
            trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict
            trainer.train()
        return clock.steps

    def hf_trainer_grouped(self, steps: int) -> Steps:
        """transformers.Trainer as a speed-aware user sets it up: no padding when tokenizing, batches of
        similar lengths (train_sampling_strategy="group_by_length", transformers 5's spelling of
        group_by_length=True) padded per batch by DataCollatorWithPadding, hprune's batch size and
        learning rate for the task, the same threads; otherwise default TrainingArguments.

        Its LengthGroupedSampler sorts megabatches of min(rows // (4 x batch), 50) batches in descending length,
        so it gets 200 batches of rows (as many as the sample has; a megabatch of 50 batches, as on a full
        dataset) and trains one whole megabatch: its examples then have the lengths of a random sample, as
        hprune's shuffled batches do (the first `steps` batches alone would be the longest). hprune's loop sorts
        pools of at most 50 batches too, here only the batches it trains: never a tighter grouping than the
        Trainer's. Fed only the rows it trains, the Trainer would sort pairs of batches in --quick and pad more."""
        from datasets import Dataset

        torch.set_flush_denormal(False)
        torch.use_deterministic_algorithms(False)
        n = min(len(self.texts), 4 * MEGABATCH * self.config.batch_size)
        pairs = self.pairs[:n] if self.pairs else None
        encoded = self.tokenizer(self.texts[:n], pairs, max_length=HF_GLUE["max_length"], truncation=True)
        dataset = Dataset.from_dict({**encoded, "label": self.labels[:n].tolist()})
        collator = CountingCollator(self.tokenizer)
        clock = TrainerClock(self.config.batch_size, HF_GLUE["max_length"], 0.0, collator)
        with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pin_memory.*")
            args = TrainingArguments(output_dir=out, per_device_train_batch_size=self.config.batch_size, learning_rate=self.config.lr,
                                     train_sampling_strategy="group_by_length", max_steps=min(steps, n // self.config.batch_size), save_strategy="no", report_to="none",
                                     disable_tqdm=True, seed=0, use_cpu=True)
            trainer = Trainer(model=self.fresh_model(), args=args, train_dataset=dataset, processing_class=self.tokenizer,
                              data_collator=collator, callbacks=[clock])
            trainer.remove_callback(PrinterCallback)
            trainer.train()
        return clock.steps

    def hprune(self, steps: int, *, bf16: bool = False, parity: int | None = None, model=None) -> StepClock:
        """hprune's fine_tune with hprune's defaults and settings, recording dynamics as scoring does
        (`parity`: only on the even or the odd steps, see StepClock)."""
        setup_torch()
        n = steps * self.config.batch_size
        clock = StepClock(self.lengths[:n], DynamicsRecorder(RunDynamics.empty(1, n)), parity)
        fine_tune(model or self.fresh_model(), self.tokenizer, self.head(n), self.labels[:n], replace(self.config, bf16=bf16),
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
    useful_tflops: float  # the same with real (non-padding) tokens
    peak_fraction: float  # tflops over the best matmul peak of either dtype
    peak_rss_mib: float
    start_rss_mib: float


def measure(bench: TaskBench, sizes: Sizes) -> dict[str, list[tuple[Steps, float, float]]]:
    """The loops on one task: the fp32 loops `repeats` times in alternating order, then --bf16 once;
    for every measurement its steps, peak RSS and RSS at its start."""
    variants = {HF_LOOP: lambda: bench.hf_trainer(sizes.hf_steps), HPRUNE_FP32: lambda: bench.hprune(sizes.hprune_steps).steps,
                HF_GROUPED: lambda: bench.hf_trainer_grouped(MEGABATCH), HPRUNE_POOLED: lambda: bench.hprune(MEGABATCH).steps}
    order = [name for repeat in range(sizes.repeats) for name in list(variants)[:: 1 if repeat % 2 == 0 else -1]]
    if bench.task in sizes.bf16_tasks:
        variants[HPRUNE_BF16] = lambda: bench.hprune(sizes.bf16_steps, bf16=True).steps
        order.append(HPRUNE_BF16)
    results: dict[str, list[tuple[Steps, float, float]]] = {name: [] for name in variants}
    for name in order:
        reset_peak_rss()
        start = rss_mib()
        steps = variants[name]()
        results[name].append((steps, peak_rss_mib(), start))
    return results


def summarize(bench: TaskBench, results: dict[str, list[tuple[Steps, float, float]]], peak: float) -> list[Row]:
    """A row per loop: median rates over the measurements; tokens per step over all of them."""
    rows = []
    for name, measured in results.items():
        runs = [steps for steps, _, _ in measured]
        rate = {f: statistics.median(s.total(f) / s.seconds for s in runs) for f in ("examples", "real_tokens", "padded_tokens")}
        counted = sum(len(s.stamps) - 1 for s in runs)
        per_step = {f: sum(s.total(f) for s in runs) / counted for f in ("examples", "real_tokens", "padded_tokens")}
        flops, useful = (6 * bench.params * rate[f] for f in ("padded_tokens", "real_tokens"))
        rows.append(Row(bench.task, name, round(per_step["examples"]), rate["examples"], per_step["real_tokens"], per_step["padded_tokens"],
                        flops / 1e12, useful / 1e12, flops / peak, max(m[1] for m in measured), min(m[2] for m in measured)))
    return rows


def recording_overhead(bench: TaskBench, sizes: Sizes) -> dict:
    """The cost of recording, as a share of the step time, from pairs of runs on the same batches from the
    same weights (so step k of one run computes exactly what step k of the other does): run A records
    the even steps, run B the odd ones, and the pairs alternate which runs first. Each step's A - B time
    difference is +cost + drift on even steps and -cost + drift on odd ones, where drift is whatever the
    machine's load did between the two runs; so cost = (median even difference - median odd difference) / 2,
    free of the drift that swamps a plain on-run-versus-off-run comparison on a shared machine. Also the
    time spent inside DynamicsRecorder.record itself, per recorded step."""
    diffs: dict[int, list[float]] = {0: [], 1: []}  # A - B step times, on the steps A records (0) and B records (1)
    step_times, record_times, last = [], [], None
    for pair in range(sizes.overhead_pairs):
        runs = {parity: bench.hprune(sizes.overhead_steps, parity=parity) for parity in ((0, 1) if pair % 2 == 0 else (1, 0))}
        a, b = runs[0].steps.step_seconds(), runs[1].steps.step_seconds()  # interval k holds record(k) when k is recorded
        for parity in (0, 1):
            diffs[parity].extend(a[parity::2] - b[parity::2])
        step_times.extend(np.concatenate([a, b]))
        record_times.extend(runs[0].record_seconds + runs[1].record_seconds)
        last = runs[0]
    step = float(np.median(step_times))
    even, odd = np.array(diffs[0]), np.array(diffs[1])
    rng = np.random.default_rng(0)  # a bootstrap of the estimate, for its 95% interval
    resampled = [(np.median(rng.choice(even, len(even))) - np.median(rng.choice(odd, len(odd)))) / 2 for _ in range(2000)]
    return {"pct": 100 * (np.median(even) - np.median(odd)) / 2 / step, "ci_pct": 100 * np.percentile(resampled, [2.5, 97.5]) / step,
            "steps": len(even) + len(odd), "direct_pct": 100 * float(np.median(record_times)) / step, "step_ms": 1000 * step,
            "dynamics": last.recorder.dynamics}


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
def extras(benches: dict[str, TaskBench], data_dir: Path, sizes: Sizes) -> list[tuple[str, str]]:
    """Cheap checks of settings that are not defaults: torch threads and torch.compile for SST-2 training,
    and the eval batch size of predict on each task's validation file (medians of 3, alternating order)."""
    out, bench = [], benches["sst2"]
    threads = torch.get_num_threads()
    for n in sorted({1, threads, 2 * threads}):
        torch.set_num_threads(n)
        steps = bench.hprune(sizes.extras_steps).steps
        out.append((f"fine_tune sst2, torch threads {n}", f"{steps.total('examples') / steps.seconds:.1f} examples/s"))
    torch.set_num_threads(threads)
    model = bench.fresh_model()
    model.compile(dynamic=True)
    started = time.perf_counter()
    steps = bench.hprune(sizes.extras_steps, model=model).steps
    out.append(("fine_tune sst2, torch.compile(dynamic=True)", f"{steps.total('examples') / steps.seconds:.1f} examples/s after the "
                f"first step; first step (compiling) {steps.stamps[0] - started:.0f} s"))
    for task, bench in benches.items():
        data = load_data(str(data_dir / task / "validation.jsonl"))
        features = tokenize(bench.tokenizer, data.texts, data.pairs, HF_GLUE["max_length"])
        model = bench.fresh_model()
        predict(model, bench.tokenizer, tokenize(bench.tokenizer, data.texts[:64], data.pairs[:64] if data.pairs else None, HF_GLUE["max_length"]))  # warm-up
        rates = {batch: [] for batch in (32, 64, 128, 256)}
        for repeat in range(3):
            for batch in list(rates)[:: 1 if repeat % 2 == 0 else -1]:
                started = time.perf_counter()
                predict(model, bench.tokenizer, features, batch_size=batch)
                rates[batch].append(len(features) / (time.perf_counter() - started))
        out += [(f"predict {task} validation ({len(features)}), batch {batch}", f"{statistics.median(r):.0f} examples/s")
                for batch, r in rates.items()]
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
    parser.add_argument("--threads", type=int, help="torch threads for every loop (default: torch's, one per core)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    print(f"machine: {machine()}")

    print(f"RSS after imports: {rss_mib():.0f} MiB", flush=True)
    peaks = [matmul_peak(sizes.matmul_n)]
    benches, measured = {}, {}
    for task in TASKS:
        sample = 32 * max(sizes.hf_steps, sizes.hprune_steps, sizes.bf16_steps, sizes.overhead_steps, sizes.extras_steps, 4 * MEGABATCH)
        benches[task] = TaskBench(task, sample, args.data)
        measured[task] = measure(benches[task], sizes)
        print(f"{task}: measured ({time.perf_counter() - started:.0f} s so far)", flush=True)
    overhead = recording_overhead(benches["sst2"], sizes)
    stored = dynamics_bytes(overhead["dynamics"])
    peaks.append(matmul_peak(sizes.matmul_n))  # at the start and at the end: the load on a shared machine varies
    peak = {dtype: max(p[dtype] for p in peaks) for dtype in ("fp32", "bf16")}
    rows = [row for task in TASKS for row in summarize(benches[task], measured[task], max(peak.values()))]

    print(f"matmul peak (n={sizes.matmul_n}, best of up to 5 calls, at the start and at the end): fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s\n")
    print(table(["task", "loop", "batch", "examples/s", "real / padded tokens per step", "TFLOP/s padded (real)", "of matmul peak",
                 "peak RSS MiB (at start)"],
                [[r.task, r.loop, r.batch, f"{r.examples_per_s:.1f}", f"{r.real_tokens_per_step:.0f} / {r.padded_tokens_per_step:.0f}",
                  f"{r.tflops:.3f} ({r.useful_tflops:.3f})", f"{100 * r.peak_fraction:.1f}%", f"{r.peak_rss_mib:.0f} ({r.start_rss_mib:.0f})"]
                 for r in rows]))
    print(f"\nFLOPs = 6 x {benches['sst2'].params / 1e6:.1f}M non-embedding parameters x tokens: padded tokens (what was computed), in "
          f"brackets real tokens (what was useful); attention's own FLOPs are not counted. 'of matmul peak' = padded FLOP/s over the best "
          f"matmul peak of either dtype. fp32 rates are medians over {sizes.repeats} measurement(s), --bf16 rates one measurement; the first step "
          f"of each measurement is left out.")
    print(f"recording overhead (sst2, batch {benches['sst2'].config.batch_size}, median step {overhead['step_ms']:.0f} ms): "
          f"{overhead['pct']:+.2f}% of step time (95% interval {overhead['ci_pct'][0]:+.2f} to {overhead['ci_pct'][1]:+.2f}, "
          f"{overhead['steps']} paired steps, half of them recorded); "
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
        print("\n" + table(["extra check", "result"], [list(x) for x in extras(benches, args.data, sizes)]))
    cpu = os.times()
    print(f"\nwall time {time.perf_counter() - started:.0f} s, CPU time {cpu.user + cpu.system:.0f} s (all threads; far less than "
          f"wall time x threads means the machine was busy with other work)")
    speedup = {task: rate[task, HPRUNE_FP32] / rate[task, HF_LOOP] for task in TASKS}
    grouped = {task: rate[task, HPRUNE_POOLED] / rate[task, HF_GROUPED] for task in TASKS}
    print(f"sst2 speedup_vs_hf_trainer={speedup['sst2']:.2f} rte speedup_vs_hf_trainer={speedup['rte']:.2f} "
          f"recording_overhead_pct={overhead['pct']:.2f} sst2 speedup_vs_grouped_trainer={grouped['sst2']:.2f} "
          f"rte speedup_vs_grouped_trainer={grouped['rte']:.2f}")


if __name__ == "__main__":
    main()
