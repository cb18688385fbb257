"""Selection at a budget (issue 21): at 30%, 50% and 70% of the rows, hprune's default rule and its variants
against random, RS2, CCS and the automatic subset nearest in size, 3 seeds each, by `hprune compare
--fractions`; then docs/budget.md, docs/budget.json and one trade-off plot per task (docs/budget-<task>.png).

The published scorings (docs/results/<task>/: manifest.json, scores.parquet, subsets.json) are finished scoring
folders, and every rule compared here needs only their score columns: phase 1 is not rerun. The training file
is the task's as benchmarks/reproduce.py builds it (sst2-20k: its stratified sample); compare checks it against
the scoring's fingerprint. Every fine-tune is cached by hprune: run the same command again to resume.

    python benchmarks/budget.py --tasks trec,cola,sst2-20k --jobs 6           # run (or resume), then publish
    python benchmarks/budget.py --tasks trec --scoring runs/x/scoring --train FILE --eval FILE --no-publish
    python benchmarks/budget.py --tasks trec,cola,sst2-20k --publish-only     # rebuild docs/ from what is finished
    python benchmarks/budget.py --tasks cola --fractions 0.7 --methods hscore --no-full   # add cells to the published ones
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from hprune.artifacts import load_scoring
from hprune.cli import main as hprune
from hprune.config import CCS_HARD_CUT, CCS_STRATA, DEFAULT_SELECTION, H0_CUT
from hprune.io import read_json, write_json
from hprune.phase2.compare import budget_label, read_results
from hprune.reports import versus_random
from hprune.subsets import STRATIFIED_METHODS, budget_size, nearest_subset
from reproduce import DATA, DOCS, REPO, TASKS, _check, run_stats, task_files

FRACTIONS = "0.3,0.5,0.7"
H_RULES = [m for m, rule in STRATIFIED_METHODS.items() if rule.score == "h_score"]  # the default rule and its variants
METHODS = ",".join(dict.fromkeys([DEFAULT_SELECTION, *H_RULES, "random", "rs2", "ccs", "hscore"]))


def run_task(task: str, work: Path, args) -> None:
    """`hprune compare --fractions` of one task on its published scoring (or --scoring), into WORK/<task>/budget."""
    spec = TASKS[task]
    scoring = args.scoring or DOCS / "results" / task
    train, evalf = (args.train, args.eval) if args.train else task_files(task, work, Path(args.data))
    tested = ["--test", str(Path(args.data) / spec.test)] if spec.test and not args.train else []
    parallel = ["--jobs", str(args.jobs), "--threads", "1"] if args.jobs > 1 else ["--threads", str(args.threads)] if args.threads else []
    _check(hprune(["compare", str(scoring), "--train", str(train), "--eval", str(evalf), "--fractions", args.fractions,
                   "--methods", args.methods, "--seeds", str(args.seeds), "--metric", spec.metric, "--task", task,
                   "--out", str(work / task / "budget"), *parallel, *(["--no-full"] if args.no_full else []), *(["--model", args.model] if args.model else []), *tested]))


def task_rows(task: str, compare_dir: Path, fractions: list[float]) -> list[dict]:
    """The budget.json rows of one finished comparison: per (fraction, method) and the full set (fraction 1).

    `fractions` as well as the budgets in compare.json's subsets: a run of hscore alone records only the
    automatic subset's name."""
    info = read_json(compare_dir / "compare.json")
    results = read_results(compare_dir / "results.csv")
    _, scores, family = load_scoring(info["scoring_dir"])
    metric = info["metric"]

    def row(fraction: float, method: str, subset: str) -> dict | None:
        stats = run_stats(results, method, subset, metric)
        return stats and {"task": task, "fraction": fraction, "method": method, "subset": subset, **stats,
                          "default": method == DEFAULT_SELECTION, "metric": metric}

    rows = [row(1.0, "full", "full")]
    labelled = {float(s[:-1]) / 100 for s in info["subsets"] if s.endswith("%")}
    for fraction in sorted(labelled | set(fractions)):
        label = budget_label(fraction)
        nearest = nearest_subset(family, budget_size(len(scores), fraction=fraction))["name"]
        rows += [row(fraction, m, nearest if m == "hscore" else label) for m in info["methods"]]
    return [r for r in rows if r]


def in_order(rows: list[dict]) -> list[str]:
    """The methods of these rows but the full set, in METHODS' order (the default rule first), so that every task's table reads alike."""
    order = METHODS.split(",")
    present = {r["method"] for r in rows} - {"full"}
    return sorted(present, key=lambda m: (order.index(m) if m in order else len(order), m))


def verdicts(rows: list[dict], method: str = DEFAULT_SELECTION) -> list[dict]:
    """Per (task, fraction): a method (the default rule) against random (by more than random's seed std or not) and against RS2."""
    out = []
    for (task, fraction), group in pd.DataFrame(rows).groupby(["task", "fraction"], sort=False):
        by = {r["method"]: r for r in group.to_dict("records")}
        default, random, rs2 = by.get(method), by.get("random"), by.get("rs2")
        if not (default and random):
            continue
        gap = default["mean"] - random["mean"]
        out.append({"task": task, "fraction": fraction, "gap": gap, "random_std": random["std"],
                    "versus_random": versus_random(gap, random["std"]),
                    "rs2_gap": None if rs2 is None else default["mean"] - rs2["mean"]})
    return out


def plot(task: str, rows: list[dict], path: Path) -> None:
    """Metric against the kept fraction, one line per method (error bars: seed std), the full set as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    full = next(r for r in rows if r["method"] == "full")
    ax.axhspan(100 * (full["mean"] - full["std"]), 100 * (full["mean"] + full["std"]), color="grey", alpha=0.2)
    ax.axhline(100 * full["mean"], color="grey", ls="--", lw=1, label=f"full set ({full['size']})")
    methods = in_order(rows)
    for k, method in enumerate(methods):
        line = sorted({r["size"]: r for r in rows if r["method"] == method}.values(), key=lambda r: r["size"])  # hscore: a subset once
        offset = 0.004 * (k - (len(methods) - 1) / 2)  # side by side, so that error bars don't hide each other
        ax.errorbar([r["size"] / full["size"] + offset for r in line], [100 * r["mean"] for r in line], yerr=[100 * r["std"] for r in line],
                    marker="o", ms=4, capsize=3, lw=2.5 if method == DEFAULT_SELECTION else 1.2,
                    label=f"{method} (automatic subset nearest in size)" if method == "hscore" else method)
    ax.set_xlabel("fraction of the training set kept")
    ax.set_ylabel(f"{full['metric']} x 100")
    ax.set_title(f"{task}: selection at a budget (mean ± std over seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the axes: inside it hid the middle budget
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# cells published before hprune recorded device, threads and load beside each time: what the sessions that ran them noted
UNRECORDED = "2 Zen 3 cores, 2 fine-tunes at a time on one thread each, load about 2, as noted by the sessions that ran them"


def conditions(rows: list[dict]) -> str:
    """Where the fine-tunes behind these cells ran, as recorded beside their times (hprune.engine.loop.run_conditions)."""
    recorded = [r for r in rows if "load" in r]
    parts = []
    if recorded:
        low, high = min(r["load"][0] for r in recorded), max(r["load"][1] for r in recorded)
        threads = max(r["threads"] for r in recorded)
        parts.append(f"{len(recorded)} cells recorded {', '.join(sorted({r['device'] for r in recorded}))}, at most {threads} torch "
                     f"thread{'s' if threads > 1 else ''} per fine-tune, 1-minute load {low:.1f} to {high:.1f}")
    if len(recorded) < len(rows):
        parts.append(f"{len(rows) - len(recorded)} cells: {UNRECORDED}")
    return "; ".join(parts)


def markdown(rows: list[dict], command: str) -> str:
    """docs/budget.md: the table per task, the verdicts against the issue's target, the rules' definitions."""
    fmt = lambda r: f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}" if r else "–"
    judged = verdicts(rows)
    seeds = sorted({len(r["seeds"]) for r in rows})
    lines = [
        "# Selection at a budget: the default rule against random, RS2, CCS and the automatic subsets", "",
        "Produced by `python benchmarks/budget.py` runs, each adding or replacing its cells "
        f"(the last: `{command}`; `hprune compare --fractions`, {' or '.join(map(str, seeds))} phase-2 seeds from 1000, on the published "
        "scorings of docs/results/<task>/ unless the command names another, with the scoring's model and hprune's defaults). "
        "Metric ×100, mean ± std over the seeds. The default rule (`--fraction`/`--size` without `--method`) is "
        f"**{DEFAULT_SELECTION}** (hprune.config.DEFAULT_SELECTION).", "",
        "Methods, all at exactly round(F × N) examples unless said:", "",
        f"- `hscore-stratified`: cut the {H0_CUT:.0%} of the H = 0 examples with the lowest confidence (likely mislabelled); give each "
        "class its share of the budget (largest remainder); within a class, spread its share evenly over the H values from the "
        "smallest stratum up (CCS's allocation); random within a stratum.",
        "- `hscore-adaptive`: as `hscore-stratified`, but the strata of a class share its budget in proportion to count^(1 − F) "
        "(F the fraction kept) instead of evenly: close to even (CCS) at large budgets, close to the strata's own sizes (random after the "
        "cut) at small ones.",
        "- `hscore-joint`: the same cut; one stratum per (H, class), the budget spread evenly over all of them from the smallest up.",
        "- `hscore-ticket`: the same cut and class shares; a class's share is drawn from its winning ticket (0 < H < R) first, evenly over "
        "the H values as in `hscore-stratified`, then, once the ticket is used up, from H = R at random, then from what the cut left of "
        "H = 0: the order in which the paper's family gives its levels back, extended to any size.",
        f"- `ccs` (Zheng et al., ICLR 2023) on AUM: cut the {CCS_HARD_CUT:.0%} of lowest AUM; {CCS_STRATA} equal-width AUM strata, the "
        "budget spread evenly from the smallest up; random within.",
        "- `random`: a uniform random subset (a new one per seed). `rs2` (Okanovic et al.): a new random subset of the size every "
        "epoch, without replacement across epochs: the same example-steps as a static subset.",
        "- `hscore`: the paper's automatic subset nearest in size (its own size, named in the table).", "",
    ]
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        full = next(r for r in mine if r["method"] == "full")
        methods = in_order(mine)
        lines += [f"## {task} ({full['metric']}; full set {full['size']} examples: {fmt(full)})", "",
                  "| fraction | size | " + " | ".join(methods) + " | default vs random |", "|---|---|" + "---|" * (len(methods) + 1)]
        for fraction in sorted({r["fraction"] for r in mine if r["method"] != "full"}):
            at = {r["method"]: r for r in mine if r["fraction"] == fraction}
            size = budget_size(full["size"], fraction=fraction)
            cells = [fmt(at.get(m)) + (f" ({at[m]['subset']}, {at[m]['size']})" if m == "hscore" and m in at else "") for m in methods]
            verdict = next((v["versus_random"] for v in judged if v["task"] == task and v["fraction"] == fraction), "–")
            lines.append(f"| {fraction:.0%} | {size} | " + " | ".join(cells) + f" | {verdict} |")
        trained = {(r["method"], r["subset"]): r for r in mine}.values()  # a subset nearest to two budgets trained once
        seconds = sum(r["train_seconds"] * len(r["seeds"]) for r in trained)
        lines += ["", f"Training time of all its fine-tunes: {seconds:,.0f} s ({conditions(list(trained))}).", "",
                  f"![{task}](budget-{task}.png)", ""]
    above = [v for v in judged if v["versus_random"] == "above"]
    below = [v for v in judged if v["versus_random"] == "below"]
    target = not below and 2 * len(above) >= len(judged)
    where = lambda vs, gap: ", ".join(f"{v['task']} {v['fraction']:.0%} ({100 * v[gap]:+.2f})" for v in vs) or "none"
    with_rs2 = [v for v in judged if v["rs2_gap"] is not None]
    lines += ["## Against the target", "",
              f"Target: at no (task, fraction) the default rule's mean below random's by more than random's seed std, and above it by more "
              f"than that std on at least half. Measured on {len(judged)}: above at {len(above)}, below at {len(below)}: the target is "
              f"{'met' if target else 'NOT met'}. In brackets: the default rule's mean minus the other's, ×100.", "",
              f"- below random by more than its std: {where(below, 'gap')}.", f"- above random by more than its std: {where(above, 'gap')}.",
              f"- within random's std: {where([v for v in judged if v['versus_random'] == 'within'], 'gap')}.",
              f"- static selection (the default rule) above RS2: {where([v for v in with_rs2 if v['rs2_gap'] > 0], 'rs2_gap')}; "
              f"not above: {where([v for v in with_rs2 if v['rs2_gap'] <= 0], 'rs2_gap')}.", ""]
    lines += ["## Every rule against random", "",
              "Per method, at how many (task, fraction) its mean is above random's by more than random's seed std, within it, or "
              "below it, counted over the cells where it ran (a method missing from a task's table did not run there); and the mean of "
              "its mean minus random's (×100; hscore at its own size, so roughly). The default rule is chosen from this table: the "
              "fewest `below`, then the most `above`, then the largest mean gap.", "",
              "| method | above | within | below | mean gap |", "|---|---|---|---|---|"]
    for method in (m for m in in_order(rows) if m != "random"):
        mine = verdicts(rows, method)
        count = lambda word: sum(v["versus_random"] == word for v in mine)
        gap = sum(v["gap"] for v in mine) / len(mine) if mine else float("nan")
        name = f"**{method}** (default)" if method == DEFAULT_SELECTION else method
        lines.append(f"| {name} | {count('above')} | {count('within')} | {count('below')} | {100 * gap:+.2f} |")
    return "\n".join(lines) + "\n"


def publish(tasks: list[str], work: Path, docs: Path, command: str, fractions: list[float]) -> list[dict]:
    """docs/budget.json, .md and the plots: the published rows, each replaced by the same (task, fraction, method)
    from `work` where that is finished. So cells trained on another machine (runs/ is not committed) stay."""
    published = read_json(docs / "budget.json") if (docs / "budget.json").is_file() else []
    rows = []
    for task in dict.fromkeys([*tasks, *(r["task"] for r in published)]):
        compare_dir = work / task / "budget"
        fresh = task_rows(task, compare_dir, fractions) if (compare_dir / "results.csv").is_file() else []
        mine = list({(r["fraction"], r["method"]): r for r in [*(r for r in published if r["task"] == task), *fresh]}.values())
        for r in mine:  # the default may have changed since they were published
            r["default"] = r["method"] == DEFAULT_SELECTION
        if mine:
            plot(task, mine, docs / f"budget-{task}.png")
        rows += mine
    write_json(docs / "budget.json", rows)
    (docs / "budget.md").write_text(markdown(rows, command))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="trec,cola,sst2-20k", help=f"comma-separated, from: {', '.join(TASKS)}")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "budget", help="where the comparisons live (not committed)")
    p.add_argument("--fractions", default=FRACTIONS, help=f"the budgets (default {FRACTIONS})")
    p.add_argument("--methods", default=METHODS, help=f"hprune compare's --methods (default {METHODS})")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=1, help="fine-tunes at once, each in its own process on one thread (6 or more on a GPU)")
    p.add_argument("--threads", type=int, help="torch threads with --jobs 1")
    p.add_argument("--model", help="hprune's --model (default: the scoring's)")
    p.add_argument("--data", default=str(DATA), help="the folder of the task data (default: ../shared/data)")
    p.add_argument("--scoring", type=Path, help="a scoring folder instead of docs/results/<task> (one task)")
    p.add_argument("--train", type=Path, help="with --scoring: its training file (default: the task's, as reproduce.py builds it)")
    p.add_argument("--eval", type=Path, help="with --train: the evaluation file")
    p.add_argument("--docs", type=Path, default=DOCS, help="where budget.md, budget.json and the plots go (default docs/)")
    p.add_argument("--no-full", action="store_true", help="skip the full set's fine-tunes: the published full-set row stays")
    p.add_argument("--publish-only", action="store_true", help="only rebuild the docs from finished comparisons")
    p.add_argument("--no-publish", action="store_true", help="leave the docs alone")
    args = p.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        p.error(f"unknown task {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    if (args.scoring or args.train) and len(tasks) != 1:
        p.error("--scoring and --train take one task")
    if bool(args.train) != bool(args.eval):
        p.error("--train and --eval go together")
    if not args.publish_only:
        for task in tasks:
            run_task(task, args.work, args)
    if args.no_publish:
        return 0
    command = " ".join(["python benchmarks/budget.py", *(argv if argv is not None else sys.argv[1:])])
    rows = publish(tasks, args.work, args.docs, command, [float(f) for f in args.fractions.split(",")])
    print(f"published {len(rows)} rows of {', '.join(dict.fromkeys(r['task'] for r in rows)) or 'nothing yet'} -> "
          f"{args.docs / 'budget.md'}, budget.json, budget-<task>.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
