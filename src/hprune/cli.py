"""The `hprune` command: score, subsets, export, train, compare, report. Bad input exits 2 with one `error:` line."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import signal
import sys
from pathlib import Path

from .config import COMPARE_METHODS, DEFAULT_SELECTION, MODEL_HELP, TASK_TYPES, TRAIN_OPTIONS, ScoreConfig, TrainConfig, option_help
from .errors import HpruneError, Interrupted

EPILOG = "Docs: README.md. Every subcommand has --help."


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _seed(text: str) -> int:
    return _whole_number(text, 0)


def _number(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False):
    """An argparse type for a finite float in [low, high], either end optionally open."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low) or (high_open and value == high):
            bounds = f"{'above' if low_open else 'at least'} {low:g}" + ("" if high == math.inf else f" and {'below' if high_open else 'at most'} {high:g}")
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value
    return parse


def _add_data_options(p) -> None:
    g = p.add_argument_group("data columns (detected when not given)")
    g.add_argument("--task-type", choices=TASK_TYPES, help="the task kind (default: detected: a 'choices' list column is multiple-choice; "
                   "'context', 'question' and SQuAD-style 'answers' are extractive-qa; else classification; README: Task types)")
    g.add_argument("--text-column", help="column with the text (default: text, sentence, or the first of a pair)")
    g.add_argument("--text-pair-column", help="column with the second text of a pair task")
    g.add_argument("--label-column", help="column with the label (default: label)")


# Static, so that `--help` need not import pandas; tests/test_cli.py checks it names every method of subsets.BUDGET_METHODS.
BUDGET_METHODS_HELP = ("hscore-adaptive, hscore-stratified, hscore-joint, hscore-ticket (H strata within each class: shares by size and "
                       "budget, or even; or per H and class; or the winning ticket first), ccs (AUM strata), random, or a ranking: "
                       "ambiguous, hard, easy, forgetting, el2n, aum")


def _add_budget_options(p, what: str) -> None:
    g = p.add_argument_group(f"a budget instead of a named subset ({what})")
    g.add_argument("--fraction", type=float, help="keep this share of the rows, 0 < F <= 1: round(F x N) of them")
    g.add_argument("--size", type=_positive_int, help="keep this many rows")
    g.add_argument("--method", help=f"how the budget is filled (default {DEFAULT_SELECTION}): {BUDGET_METHODS_HELP}; README: A size you choose")


# How each TrainConfig field is read from the command line; its help and default come from hprune.config.
_OPTION_TYPES = {"epochs": _positive_int, "lr": _number(0, low_open=True), "batch_size": _positive_int, "grad_accum": _positive_int,
                 "warmup_ratio": _number(0, 1), "weight_decay": _number(0), "max_length": _positive_int}


def _add_training_options(p) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--model", default=ScoreConfig.model, help=MODEL_HELP)
    for f in dataclasses.fields(TrainConfig):
        if f.name in _OPTION_TYPES:
            g.add_argument(f"--{f.name.replace('_', '-')}", type=_OPTION_TYPES[f.name], help=option_help(f.name))
    g.add_argument("--bf16", action="store_true", default=None, help=option_help("bf16"))
    g.add_argument("--no-length-grouping", dest="length_grouped", action="store_false", default=None, help=option_help("length_grouped"))
    g.add_argument("--class-weight", choices=("balanced", "none"), help=option_help("class_weight"))
    g.add_argument("--paper-settings", action="store_true", help="the paper's hyper-parameters (lr 2e-5, batch 32, no warm-up) for faithful reproduction")
    g.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: all cores)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def _training_options(args) -> dict:
    """The TrainConfig fields the user set on the command line (None: the default)."""
    return {name: getattr(args, name) for name in TRAIN_OPTIONS}


def _warn_if_bf16_is_slow(args) -> None:
    from .engine.loop import bf16_is_slow

    if args.bf16 and bf16_is_slow():
        print("warning: --bf16 on a CPU without bf16 units (no avx512_bf16 or AMX) runs 20-30x slower than fp32; "
              "leave --bf16 off here", file=sys.stderr)


def _columns(args) -> dict:
    return {"task_type": args.task_type, "text_column": args.text_column, "pair_column": args.text_pair_column, "label_column": args.label_column}


def _load(args, source, like=None):
    """Data of any task kind; `like`: the training data, whose kind (and label map) an evaluation file takes."""
    from .tasks import as_task_data

    return as_task_data(source, like=like, **_columns(args))


def _scored(config) -> str:
    epochs = config.train.epochs
    return f"{epochs} epochs" if config.scored_epochs() == epochs else f"the first {config.scored_epochs()} of {epochs} epochs"


def cmd_score(args) -> int:
    from .diagnostics import format_learning_report
    from .reports import format_h_histogram, format_subset_table
    from .phase1.scorer import HScorer

    train = _load(args, args.train)
    eval_data = _load(args, args.eval, like=train) if args.eval else None
    _warn_if_bf16_is_slow(args)
    scorer = HScorer(args.model, args.runs, seed=args.seed, score_epochs=args.score_epochs, out_dir=args.out, paper_settings=args.paper_settings, progress=not args.quiet,
                     threads=args.threads, executor=args.executor, jobs=args.jobs, ray_address=args.ray_address, cpus_per_run=args.cpus_per_run,
                     gpus_per_run=args.gpus_per_run, **_training_options(args)).fit(train, eval_data)
    if not scorer.world_.is_main:  # under torchrun / accelerate launch, rank 0 reports
        return 0
    print(f"scored {len(train)} examples with {args.runs} runs x {_scored(scorer.config_)} "
          f"({scorer.manifest_['phase1_train_seconds']:.0f} s of training) -> {args.out}")
    print(format_learning_report(scorer.learning_report_))
    print(format_h_histogram(scorer.scores_, args.runs))
    print(format_subset_table(scorer.subsets_))
    for w in scorer.warnings_:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def cmd_subsets(args) -> int:
    from .diagnostics import format_learning_report
    from .reports import format_h_histogram, format_subset_table
    from .artifacts import load_scoring

    manifest, scores, subsets = load_scoring(args.dir)
    if args.json:
        print(json.dumps(subsets, indent=2))
        return 0
    print(format_learning_report(manifest["learning_report"]))
    print(format_h_histogram(scores, manifest["config"]["runs"]))
    print(format_subset_table(subsets))
    for w in manifest.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _subset_ids(scoring_dir: str, name: str | None, data, args):
    """The rows a subset name or the budget options (--fraction, --size, --method) keep, and the choice in words."""
    from .artifacts import subset_ids

    ids, chosen, scored = subset_ids(scoring_dir, name, data, allow_mismatch=args.allow_fingerprint_mismatch,
                                     fraction=args.fraction, size=args.size, method=args.method)
    if scored is not None:
        print(f"warning: {data.source} (fingerprint {data.fingerprint}) is not the data that was scored (fingerprint {scored}); "
              "applying the scores row by row as --allow-fingerprint-mismatch asks", file=sys.stderr)
    return ids, chosen


def cmd_export(args) -> int:
    from .artifacts import load_scored_data, load_scoring
    from .data import DATASET_FOLDER, output_format, write_rows
    from .io import atomic_path, storage_error

    out = Path(args.out)
    fmt = output_format(out)
    if out.exists() and fmt == DATASET_FOLDER:
        raise HpruneError(f"--out {out} exists; give a new folder for the datasets save_to_disk copy, or a file name with an extension")
    if out.is_dir():
        raise HpruneError(f"--out {out} is a folder; give a file name, e.g. {out / ('subset' + out.suffix)}")
    manifest, _, _ = load_scoring(args.dir)
    data = load_scored_data(manifest, args.train)
    if Path(data.source).expanduser().resolve() == out.expanduser().resolve():
        raise HpruneError(f"--out {out} is the training file itself; write the subset to a new file")
    ids, chosen = _subset_ids(args.dir, args.subset, data, args)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage_error(out, e) from None
    with atomic_path(out, folder=fmt == DATASET_FOLDER) as tmp:
        write_rows(data, ids, tmp, fmt)
    print(f"wrote {len(ids)} of {len(data)} rows ({len(ids) / len(data):.1%}, {chosen}) to {out}")
    return 0


def cmd_train(args) -> int:
    from .phase2.finetune import METRICS_FILE, finetune
    from .reports import METRIC_LABELS
    from .tasks import task_of

    train = _load(args, args.train)
    eval_data = _load(args, args.eval, like=train)
    ids, subset_name = None, "full"
    budget = args.fraction is not None or args.size is not None
    if budget and not args.subset:
        raise HpruneError("--fraction and --size choose rows of a scoring; give its folder too: --subset DIR")
    if args.subset:
        scoring_dir, name = _scoring_and_name(args.subset, budget)
        ids, subset_name = _subset_ids(scoring_dir, name, train, args)
        if len(ids) == 0:
            raise HpruneError(f"{subset_name} of {scoring_dir} is empty; pick a larger one from `hprune subsets {scoring_dir}`")
    _warn_if_bf16_is_slow(args)
    metrics = finetune(train, eval_data, model=args.model, rows=ids, subset=subset_name, seed=args.seed, out_dir=args.out,
                       paper_settings=args.paper_settings, threads=args.threads, progress=not args.quiet, **_training_options(args))
    scores = ", ".join(f"{METRIC_LABELS[m]} {metrics[m]:.4f}" for m in task_of(train).metrics)
    print(f"{subset_name}: {metrics['train_size']} examples, {scores}, "
          f"trained in {metrics['train_seconds']:.0f} s ({_conditions(metrics)}) "
          f"-> {Path(args.out) / METRICS_FILE}")
    return 0


def _conditions(metrics: dict) -> str:
    """The conditions a training time was measured under, in words (no load where the OS gives none)."""
    threads = f"{metrics['threads']} thread" + ("s" if metrics["threads"] != 1 else "")
    return ", ".join([metrics["device"], threads] + ([f"load {metrics['load']}"] if metrics["load"] is not None else []))


def _scoring_and_name(spec: str, budget: bool) -> tuple[str, str | None]:
    """`train --subset`: DIR:NAME names an automatic subset; with a budget, DIR alone names the scoring."""
    if budget and Path(spec).is_dir():
        return spec, None
    scoring_dir, _, name = spec.rpartition(":")
    if not scoring_dir or not name:
        raise HpruneError(f"--subset {spec!r} must be DIR:NAME, e.g. runs/trec:winning-ticket (with --fraction or --size: DIR)")
    return scoring_dir, name


def _fractions(text: str) -> list[float]:
    try:
        fractions = [float(x) for x in _comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 0.3,0.5,0.7, got {text!r}") from None
    outside = [f"{f:g}" for f in fractions if not 0 < f <= 1]
    if outside or not fractions:
        raise argparse.ArgumentTypeError(f"{', '.join(outside) or repr(text)} is not in (0, 1]: give shares of the rows to keep, e.g. 0.3,0.5,0.7")
    return fractions


def _comma_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def cmd_compare(args) -> int:
    from .engine.models import train_config_for
    from .phase2.compare import check_metric, compare
    from .reports import format_summary
    from .artifacts import load_scoring

    manifest = load_scoring(args.dir)[0]
    task_type = manifest.get("task_type")
    metric = check_metric(task_type, args.metric)
    _warn_if_bf16_is_slow(args)
    # defaults follow the full set, as for the scoring
    train_config = train_config_for(args.model, n_examples=manifest["n_examples"], task_type=task_type, paper_settings=args.paper_settings,
                                    **_training_options(args))
    summary = compare(
        args.dir, args.eval, out=args.out, config=train_config, train_source=args.train, model=args.model,
        subsets=args.subsets, methods=args.methods, n_seeds=args.seeds, first_seed=args.first_seed,
        class_balanced=args.class_balanced, metric=metric, task=args.task,
        allow_fingerprint_mismatch=args.allow_fingerprint_mismatch, threads=args.threads, parallel=args.jobs, progress=not args.quiet,
        test_source=args.test, fractions=args.fractions, full_set=not args.no_full,
    )
    print(format_summary(summary, metric))
    print(f"-> {args.out}: results.csv, summary.csv, report.md, report.html")
    return 0


def cmd_report(args) -> int:
    from .phase2.compare import report

    print(f"wrote {report(args.dir, scoring_dir=args.scoring, metric=args.metric)} and report.md")
    return 0


def cmd_verify(args) -> int:
    from .artifacts import scoring_files
    from .io import changed_files
    from .phase2.compare import COMPARE_FILE, comparison_files

    folder = Path(args.dir)
    recorded = comparison_files(folder) if (folder / COMPARE_FILE).is_file() else scoring_files(folder)
    problems = changed_files(folder, recorded)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"all {len(recorded)} files in {folder} match their recorded size and sha256")
    return 0


def cmd_split(args) -> int:
    from .data.split import split_by_group

    info = split_by_group(args.data, args.out, by=args.by, eval_fraction=args.eval_fraction, seed=args.seed)
    print(f"split {args.data} by {args.by!r} (seed {args.seed}): {info['train']['rows']} rows in {len(info['train']['groups'])} groups -> "
          f"{Path(args.out) / info['train']['file']}, {info['eval']['rows']} rows in {len(info['eval']['groups'])} groups -> "
          f"{Path(args.out) / info['eval']['file']} ({info['note']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hprune", description="Automatic pruning of fine-tuning datasets by H-score (arXiv 2407.08887).", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("score", help="phase 1: fine-tune R times, record dynamics, write scores and subsets",
                       description="Fine-tune the model R times x E epochs on the full training set, record per-example "
                       "correctness from every training step, and write scores.parquet, subsets.json and manifest.json.")
    p.add_argument("--train", required=True, help="training data: .jsonl/.csv/.tsv/.parquet, a save_to_disk folder, or NAME[:SPLIT] on the hub")
    p.add_argument("--eval", help="optional evaluation data: eval accuracy per epoch goes into the learning report")
    p.add_argument("--runs", type=_positive_int, default=ScoreConfig.runs, help=f"R, the number of scoring runs (default {ScoreConfig.runs}, as the paper)")
    p.add_argument("--seed", type=_seed, default=ScoreConfig.seed, help=f"seed of the first run; run r uses seed + r (default {ScoreConfig.seed})")
    p.add_argument("--score-epochs", type=_positive_int, help="train and score only the first N epochs of the --epochs schedule "
                   "(the learning rate follows the whole schedule): N/E of the cost; 1 of 3 kept 96%% of TREC's winning ticket "
                   "but 77%% of CoLA's, 2 of 3 kept 91%% or more (docs/cheap-scoring.md). Default: all epochs")
    p.add_argument("--out", required=True, help="output folder (repeat the command to resume)")
    _add_training_options(p)
    g = p.add_argument_group("scaling out (one run on several processes: torchrun --nproc_per_node N -m hprune score ...)")
    g.add_argument("--executor", choices=("local", "ray"), default="local", help="local: the runs one after another in this "
                   "process (default); ray: the runs as parallel Ray tasks (pip install 'hprune[ray]')")
    g.add_argument("--jobs", type=_positive_int, default=1, help="with the local executor: runs at once, each in its own process on "
                   "--threads threads (default: the cores shared out); several runs of a small model share one GPU")
    g.add_argument("--ray-address", help="with --executor ray: the cluster to use, e.g. ray://HOST:10001 or auto (default: start a local Ray)")
    g.add_argument("--cpus-per-run", type=_positive_int, help="with --executor ray: CPUs (and torch threads) per run (default: --threads, or 1)")
    g.add_argument("--gpus-per-run", type=_number(0), help="with --executor ray: GPUs per run, fractions allowed (default 0)")
    _add_data_options(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("subsets", help="print the automatic subsets, the H histogram and the learning report")
    p.add_argument("dir", help="a folder written by `hprune score`")
    p.add_argument("--json", action="store_true", help="print subsets.json instead of tables")
    p.set_defaults(func=cmd_subsets)

    p = sub.add_parser("export", help="write the pruned training set (rows and columns unchanged)")
    p.add_argument("dir", help="a folder written by `hprune score`")
    p.add_argument("--subset", help="subset name from `hprune subsets` (default winning-ticket, unless a budget is given)")
    p.add_argument("--out", required=True, help="output file; its extension picks the format (.jsonl .csv .tsv .parquet)")
    _add_budget_options(p, "no --subset")
    p.add_argument("--train", help="the scored training data (default: the path recorded in the manifest)")
    p.add_argument("--allow-fingerprint-mismatch", action="store_true", help="apply the scores even if the data differs from what was scored")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train", help="phase 2: fine-tune on the full set or a subset and evaluate",
                       description="Fine-tune once and write OUT/metrics.json (classification: accuracy, macro F1, Matthews "
                       "correlation; multiple choice: accuracy; extractive QA: exact match and F1; timings).")
    p.add_argument("--train", required=True, help="training data")
    p.add_argument("--eval", required=True, help="evaluation data")
    p.add_argument("--subset", help="DIR:NAME, a subset of a scoring folder, or DIR with --fraction or --size (default: the full training set)")
    _add_budget_options(p, "--subset DIR")
    p.add_argument("--seed", type=_seed, default=0, help="seed (default 0)")
    p.add_argument("--out", required=True, help="output folder for metrics.json")
    p.add_argument("--allow-fingerprint-mismatch", action="store_true", help="apply the subset even if the data differs from what was scored")
    _add_training_options(p)
    _add_data_options(p)
    p.set_defaults(func=cmd_train)

    from .metrics import ALL_METRICS

    p = sub.add_parser("compare", help="phase 2 at equal size: full set, subsets and baselines over seeds, with a report",
                       description="Fine-tune the full training set, every automatic subset (method hscore) and every baseline "
                       "method at that subset's size, with each seed, and evaluate; write OUT/results.csv, summary.csv, "
                       "report.md and report.html. Each fine-tune's result is cached in OUT/cache: repeating or extending the "
                       "command trains only what is missing. --model defaults to the scoring's model.")
    p.add_argument("dir", help="a folder written by `hprune score`")
    p.add_argument("--eval", required=True, help="evaluation data (read with the scored data's columns)")
    p.add_argument("--test", help="a second held-out file every fine-tune is evaluated on too (e.g. SST-2's test split); "
                   "results.csv and summary.csv get test_ columns, the report and --metric stay on --eval")
    p.add_argument("--train", help="the scored training data (default: the path recorded in the manifest)")
    p.add_argument("--subsets", type=_comma_list, help="comma-separated subset names or codes, e.g. winning-ticket,0126 "
                   "(default: the paper's family when R = 6, else every subset)")
    p.add_argument("--fractions", type=_fractions, help="comma-separated budgets, e.g. 0.3,0.5,0.7: each fills round(F x N) rows by "
                   "every method; hscore there is the automatic subset nearest in size (without --subsets: no automatic subsets besides)")
    p.add_argument("--methods", type=_comma_list, help="comma-separated: hscore (the subset itself) and, at its size, rs2 (a new random "
                   f"subset every epoch), {BUDGET_METHODS_HELP} (default {','.join(COMPARE_METHODS)})")
    p.add_argument("--seeds", type=_positive_int, default=3, help="fine-tunes per (subset, method) and of the full set, "
                   "by default with seeds 1000, 1001, ...: never those of the scoring runs (default 3)")
    p.add_argument("--first-seed", type=_seed, help="seed of the first of them; the k-th uses first + k (default 1000, or past the "
                   "last scoring seed: phase 2 uses seeds the scoring runs did not)")
    p.add_argument("--class-balanced", action="store_true", help="baselines keep each class's share of the subset size")
    p.add_argument("--no-full", action="store_true", help="skip the full set's fine-tunes (you know them already; those in OUT stay)")
    p.add_argument("--metric", choices=ALL_METRICS, help="metric of the printed table and the trade-off plot "
                   "(results.csv has all of the task's: accuracy, macro_f1, mcc; multiple choice: accuracy; extractive QA: "
                   "exact, f1; default accuracy, for extractive QA f1)")
    p.add_argument("--task", help="task name in results.csv (default: the scoring folder's name)")
    p.add_argument("--jobs", type=_positive_int, default=1, help="fine-tunes at once, each in its own process on --threads threads "
                   "(default: the cores shared out); on 2 CPU cores --jobs 2 trains ~1.2-1.35x faster than one at a time")
    p.add_argument("--out", required=True, help="report folder (repeat the command to resume or extend)")
    p.add_argument("--allow-fingerprint-mismatch", action="store_true", help="apply the scores even if the data differs from what was scored")
    _add_training_options(p)
    p.set_defaults(func=cmd_compare, model=None)

    p = sub.add_parser("report", help="rewrite a comparison's report.md and report.html from its results.csv",
                       description="Regenerate the plots, report.md and the self-contained report.html of an `hprune compare` folder.")
    p.add_argument("dir", help="a folder written by `hprune compare`")
    p.add_argument("--scoring", help="the scoring folder (default: the one recorded in the comparison's compare.json)")
    p.add_argument("--metric", choices=ALL_METRICS, help="metric of the trade-off plot and table (default: the one compare used)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("verify", help="check a scoring or comparison folder's files against their recorded checksums",
                       description="Check every file a scoring folder's manifest.json (or a comparison folder's compare.json) "
                       "records against its recorded size and sha256: one line per file that is missing, truncated or changed, "
                       "and exit status 1; else one line saying all is well, and exit status 0.")
    p.add_argument("dir", help="a folder written by `hprune score` or `hprune compare`")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("split", help="split one data file into train and eval parts by a column (e.g. SQuAD v2 by article)",
                       description="Write OUT/train.jsonl and OUT/eval.jsonl, rows unchanged, with whole groups of rows sharing the "
                       "--by value (default title) drawn at random (seeded) into eval until it holds --eval-fraction of the rows; "
                       "OUT/split.json records how. For data with one usable split, such as SQuAD v2 offline (validation only): "
                       "results on it are on this split, not the official one.")
    p.add_argument("data", help="the data file to split")
    p.add_argument("--out", required=True, help="output folder (outside the project; never the data's own folder)")
    p.add_argument("--by", default="title", help="the grouping column: rows sharing its value stay together (default title)")
    p.add_argument("--eval-fraction", type=_number(0, 1, low_open=True, high_open=True), default=0.2,
                   help="share of rows for eval, reached with whole groups (default 0.2)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the group draw (default 0)")
    p.set_defaults(func=cmd_split)
    return parser


@contextlib.contextmanager
def no_progress_bars():
    """--quiet silences the libraries' bars too (transformers' GGUF loader calls tqdm itself): tqdm's default
    in this process, and TQDM_DISABLE for the worker processes it spawns (tqdm reads it at import)."""
    from tqdm import std

    init, env = vars(std.tqdm)["__init__"], os.environ.get("TQDM_DISABLE")
    std.tqdm.__init__ = functools.partialmethod(std.tqdm.__init__, disable=True)
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        std.tqdm.__init__ = init
        if env is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = env


@contextlib.contextmanager
def library_lines():
    """What the library logs (logger "hprune": progress, notes, warnings) as plain lines: information on
    stdout, warnings on stderr as `warning: ...`; as it was after the command."""
    logger = logging.getLogger("hprune")
    info, warning = logging.StreamHandler(sys.stdout), logging.StreamHandler(sys.stderr)
    info.addFilter(lambda record: record.levelno < logging.WARNING)
    warning.setLevel(logging.WARNING)
    warning.setFormatter(logging.Formatter("warning: %(message)s"))
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(info)
    logger.addHandler(warning)
    try:
        yield
    finally:
        logger.removeHandler(info)
        logger.removeHandler(warning)
        logger.setLevel(level)


@contextlib.contextmanager
def stop_on_signals():
    """SIGTERM (a scheduler's stop, `kill`) and SIGINT (Ctrl-C) stop the command at the next safe point, never
    inside a file write (io.stop_at_safe_point), so the folder is resumable. A SIGINT ignored by the caller
    (`nohup`, a background job of a script) stays ignored."""
    from .io import stop_at_safe_point

    def stop(signum, frame):
        stop_at_safe_point(Interrupted(128 + signum))

    stopped = [sig for sig in (signal.SIGTERM, signal.SIGINT) if signal.getsignal(sig) is not signal.SIG_IGN]
    try:
        previous = {sig: signal.signal(sig, stop) for sig in stopped}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with stop_on_signals(), library_lines(), no_progress_bars() if getattr(args, "quiet", False) else contextlib.nullcontext():
            return args.func(args)
    except HpruneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system said no outside hprune's own writes (permissions, a path under a file)
        print(f"error: {e.filename}: {e.strerror or e}; check the path, its permissions and the free space", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # SIGINT, SIGTERM, a killed worker (Interrupted)
        print("interrupted: run the same command to resume", file=sys.stderr)
        return getattr(e, "status", 128 + signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
