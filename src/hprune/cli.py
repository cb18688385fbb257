"""The `hprune` command: score, subsets, export, train. Bad input exits 2 with one `error:` line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import HpruneError

EPILOG = "Docs: README.md. Every subcommand has --help."


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_data_options(p) -> None:
    g = p.add_argument_group("data columns (detected when not given)")
    g.add_argument("--text-column", help="column with the text (default: text, sentence, or the first of a pair)")
    g.add_argument("--text-pair-column", help="column with the second text of a pair task")
    g.add_argument("--label-column", help="column with the label (default: label)")


def _add_training_options(p) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--model", default="minilm", help="'minilm' (offline all-MiniLM-L6-v2), a checkpoint folder, or a hub name")
    g.add_argument("--epochs", type=_positive_int, help="epochs per fine-tune (default 3)")
    g.add_argument("--lr", type=float, help="peak learning rate (default 1e-4; --paper-settings: 2e-5)")
    g.add_argument("--batch-size", type=_positive_int, help="examples per micro-batch (default 32)")
    g.add_argument("--grad-accum", type=_positive_int, help="micro-batches per optimizer step (default 1)")
    g.add_argument("--warmup-ratio", type=float, help="share of steps with linear warm-up (default 0.1; paper 0)")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.01)")
    g.add_argument("--max-length", type=_positive_int, help="truncate inputs to this many tokens (default 128)")
    g.add_argument("--bf16", action="store_true", default=None, help="bfloat16 autocast (faster on CPUs with avx512_bf16 and on GPUs)")
    g.add_argument("--no-length-grouping", dest="length_grouped", action="store_false", default=None, help="random batches instead of length-grouped ones")
    g.add_argument("--paper-settings", action="store_true", help="the paper's hyper-parameters (lr 2e-5, batch 32, no warm-up) for faithful reproduction")
    g.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: all cores)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def _train_config(args):
    from .defaults import train_config

    return train_config(
        paper_settings=args.paper_settings, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        grad_accum=args.grad_accum, warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay,
        max_length=args.max_length, bf16=args.bf16, length_grouped=args.length_grouped,
    )


def _load(args, source, **kw):
    from .data import load_data

    return load_data(source, text_column=args.text_column, pair_column=args.text_pair_column, label_column=args.label_column, **kw)


def cmd_score(args) -> int:
    from .reports import format_h_histogram, format_subset_table
    from .diagnostics import format_learning_report
    from .scoring import HScorer, ScoreConfig

    train = _load(args, args.train)
    eval_data = _load(args, args.eval, label_names=train.label_names) if args.eval else None
    config = ScoreConfig(model=args.model, runs=args.runs, seed=args.seed, train=_train_config(args))
    scorer = HScorer(config, out_dir=args.out, progress=not args.quiet, threads=args.threads).fit(train, eval_data)
    print(f"scored {len(train)} examples with {args.runs} runs x {config.train.epochs} epochs in {scorer.manifest_['seconds']:.0f} s -> {args.out}")
    print(format_learning_report(scorer.learning_report_))
    print(format_h_histogram(scorer.scores_, args.runs))
    print(format_subset_table(scorer.subsets_))
    for w in scorer.warnings_:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def cmd_subsets(args) -> int:
    from .diagnostics import format_learning_report
    from .reports import format_h_histogram, format_subset_table
    from .scoring import load_scoring

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


def _subset_ids(scoring_dir: str, name: str, data, allow_mismatch: bool):
    from .scoring import check_fingerprint, load_scoring
    from .subsets import find_subset, subset_mask

    manifest, scores, subsets = load_scoring(scoring_dir)
    subset = find_subset(subsets, name)
    check_fingerprint(manifest, data, allow_mismatch=allow_mismatch)
    return scores["example_id"].to_numpy()[subset_mask(scores["h_score"].to_numpy(), subset["removed_h"])], subset


def cmd_export(args) -> int:
    from .data import FILE_FORMATS, write_rows
    from .io import atomic_path
    from .scoring import load_scoring

    out = Path(args.out)
    if out.suffix.lower() not in FILE_FORMATS:
        raise HpruneError(f"unknown output format {out.suffix or '(no extension)'!r} for {out}; use one of {', '.join(FILE_FORMATS)}")
    manifest, _, _ = load_scoring(args.dir)
    data = _load_scored_train(args, manifest)
    ids, subset = _subset_ids(args.dir, args.subset, data, args.allow_fingerprint_mismatch)
    with atomic_path(out) as tmp:
        write_rows(data, ids, tmp)
    print(f"wrote {len(ids)} of {len(data)} rows ({len(ids) / len(data):.1%}, subset {subset['name']}) to {out}")
    return 0


def _load_scored_train(args, manifest):
    from .data import load_data

    return load_data(
        args.train or manifest["train_source"],
        text_column=manifest["text_column"], pair_column=manifest["pair_column"], label_column=manifest["label_column"],
    )


def cmd_train(args) -> int:
    from .finetune import train_and_evaluate
    from .io import ensure_writable, write_json

    out = Path(args.out)
    ensure_writable(out)
    train = _load(args, args.train)
    eval_data = _load(args, args.eval, label_names=train.label_names)
    ids, subset_name = None, "full"
    if args.subset:
        scoring_dir, _, name = args.subset.rpartition(":")
        if not scoring_dir:
            raise HpruneError(f"--subset {args.subset!r} must be DIR:NAME, e.g. runs/trec:winning-ticket")
        ids, subset = _subset_ids(scoring_dir, name, train, args.allow_fingerprint_mismatch)
        subset_name = subset["name"]
    config = _train_config(args)
    metrics = train_and_evaluate(args.model, train, eval_data, config, seed=args.seed, example_ids=ids,
                                 progress=None if args.quiet else f"train {subset_name}", threads=args.threads)
    result = {"subset": subset_name, "model": args.model, "seed": args.seed, "train_source": args.train, "eval_source": args.eval,
              "fingerprint": train.fingerprint, "config": config.to_dict(), "metrics": metrics}
    write_json(out / "metrics.json", result)
    print(f"{subset_name}: {len(ids) if ids is not None else len(train)} examples, accuracy {metrics['accuracy']:.4f}, "
          f"macro F1 {metrics['macro_f1']:.4f}, MCC {metrics['mcc']:.4f}, trained in {metrics['train_seconds']:.0f} s -> {out / 'metrics.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hprune", description="Automatic pruning of fine-tuning datasets by H-score (arXiv 2407.08887).", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("score", help="phase 1: fine-tune R times, record dynamics, write scores and subsets",
                       description="Fine-tune the model R times x E epochs on the full training set, record per-example "
                       "correctness from every training step, and write scores.parquet, subsets.json and manifest.json.")
    p.add_argument("--train", required=True, help="training data: .jsonl/.csv/.tsv/.parquet, a save_to_disk folder, or NAME[:SPLIT] on the hub")
    p.add_argument("--eval", help="optional evaluation data: eval accuracy per epoch goes into the learning report")
    p.add_argument("--runs", type=_positive_int, default=6, help="R, the number of scoring runs (default 6, as the paper)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first run; run r uses seed + r (default 0)")
    p.add_argument("--out", required=True, help="output folder (repeat the command to resume)")
    _add_training_options(p)
    _add_data_options(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("subsets", help="print the automatic subsets, the H histogram and the learning report")
    p.add_argument("dir", help="a folder written by `hprune score`")
    p.add_argument("--json", action="store_true", help="print subsets.json instead of tables")
    p.set_defaults(func=cmd_subsets)

    p = sub.add_parser("export", help="write the pruned training set (rows and columns unchanged)")
    p.add_argument("dir", help="a folder written by `hprune score`")
    p.add_argument("--subset", default="winning-ticket", help="subset name from `hprune subsets` (default winning-ticket)")
    p.add_argument("--out", required=True, help="output file; its extension picks the format (.jsonl .csv .tsv .parquet)")
    p.add_argument("--train", help="the scored training data (default: the path recorded in the manifest)")
    p.add_argument("--allow-fingerprint-mismatch", action="store_true", help="apply the scores even if the data differs from what was scored")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train", help="phase 2: fine-tune on the full set or a subset and evaluate",
                       description="Fine-tune once and write OUT/metrics.json (accuracy, macro F1, Matthews correlation, timings).")
    p.add_argument("--train", required=True, help="training data")
    p.add_argument("--eval", required=True, help="evaluation data")
    p.add_argument("--subset", help="DIR:NAME, a subset of a scoring folder (default: the full training set)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", required=True, help="output folder for metrics.json")
    p.add_argument("--allow-fingerprint-mismatch", action="store_true", help="apply the subset even if the data differs from what was scored")
    _add_training_options(p)
    _add_data_options(p)
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HpruneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
