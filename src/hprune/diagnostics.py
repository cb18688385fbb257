"""Did the scoring runs learn? H-scores from runs that stayed near the majority-class baseline encode
the label, not the difficulty of an example (METHOD.md, last section), so hprune says so."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .config import SMALL_MODEL_LR
from .subsets import WINNING_TICKET, starved_classes

# A run has learned when its last-epoch training accuracy closes at least this share of the gap
# between the majority-class baseline and 1, or (classification) its balanced accuracy, the mean recall
# over classes, that share of the gap between chance (1/K, what any constant prediction gets) and 1. The
# second is what a class-balanced loss optimizes: it gives up accuracy on the frequent class to learn the
# rare ones, so its accuracy can stay under the majority baseline while it has learned every class.
LEARNED_GAP_SHARE = 0.25
# H is "explained by the label" when one class holds this share of an extreme H group...
LABEL_DOMINANCE = 0.9
# ...while holding less than this share of the data, in a group of at least MIN_GROUP examples.
MAX_CLASS_SHARE = 0.6
MIN_GROUP = 20
# H is also "explained by the label" when the label accounts for this share of H's variance (eta
# squared). Measured on the first 1,000 TREC rows with minilm: 0.73 with the paper's settings (runs
# that did not learn), 0.25 with hprune's defaults (docs/defaults.md).
LABEL_VARIANCE_SHARE = 0.5


def label_share_of_h_variance(h: np.ndarray, labels: np.ndarray) -> float:
    """Eta squared: the share of the variance of H that the class means explain (0 = none, 1 = all)."""
    h = np.asarray(h, dtype=np.float64)
    total = ((h - h.mean()) ** 2).sum()
    if total == 0:
        return 0.0
    class_means = pd.Series(h).groupby(np.asarray(labels)).transform("mean").to_numpy()
    return float(((class_means - h.mean()) ** 2).sum() / total)


def majority_baseline(labels: np.ndarray) -> float:
    return float(np.bincount(np.asarray(labels)).max() / len(labels))


def balanced_accuracy(correct: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean over the classes present of the share of their examples that are right, over the last axis."""
    labels = np.asarray(labels)
    correct = np.asarray(correct, dtype=np.float64)
    return np.mean([correct[..., labels == c].mean(axis=-1) for c in np.unique(labels)], axis=0)


def _threshold(baseline: float) -> float:
    return round(baseline + LEARNED_GAP_SHARE * (1 - baseline), 4)


def learning_report(correct: np.ndarray, labels: np.ndarray, *, seeds: list[int], eval_accuracy: list[list[float]] | None = None,
                    baseline: tuple[float, str] | None = None) -> dict:
    """Training accuracy per run and epoch (free: from the recorded dynamics), eval accuracy if known.
    The trivial baseline is the majority class, or `baseline` = (accuracy, name), e.g. QA's no-answer one."""
    train_acc = np.asarray(correct, dtype=np.float64).mean(axis=2)  # (R, E)
    balanced = balanced_accuracy(correct, labels) if baseline is None else None
    runs = []
    for r, seed in enumerate(seeds):
        row = {"run": r, "seed": seed, "train_accuracy": [round(float(a), 4) for a in train_acc[r]]}
        if balanced is not None:
            row["train_balanced_accuracy"] = [round(float(a), 4) for a in balanced[r]]
        if eval_accuracy is not None and eval_accuracy[r]:
            row["eval_accuracy"] = [round(float(a), 4) for a in eval_accuracy[r]]
        runs.append(row)
    majority = majority_baseline(labels) if baseline is None else baseline[0]
    report = {"majority_baseline": round(majority, 4), "learned_threshold": _threshold(majority), "runs": runs}
    if baseline is not None:
        report["baseline_name"] = baseline[1]
    else:
        chance = 1 / len(np.unique(labels))
        report.update(balanced_chance=round(chance, 4), balanced_threshold=_threshold(chance))
    return report


def learned(report: dict, run: dict) -> bool:
    """The run's last epoch clears the accuracy threshold or, where reported, the balanced-accuracy one."""
    if run["train_accuracy"][-1] >= report["learned_threshold"]:
        return True
    return "train_balanced_accuracy" in run and run["train_balanced_accuracy"][-1] >= report["balanced_threshold"]


CLI_ADVICE = {"lr": "--lr", "epochs": "add --epochs", "max_length": "raise --max-length"}
TRAINER_ADVICE = {"lr": "learning_rate", "epochs": "raise num_train_epochs", "max_length": "raise the tokenizer's max_length"}


def what_to_change(config: dict | None, *, advice: dict[str, str] = CLI_ADVICE) -> str:
    """The advice of a warning, from the settings the runs used (when known): a learning rate already at
    the small-model level is not the first thing to raise. `advice` words the settings for the user's
    interface: hprune's options, or TRAINER_ADVICE for a Transformers Trainer's arguments."""
    config = config or {}
    lr, epochs, max_length = config.get("lr"), config.get("epochs"), config.get("max_length")
    now = lambda value: f" (now {value:g})" if value is not None else ""
    more_steps = f"{advice['epochs']}{now(epochs)}"
    longer = f"{advice['max_length']}{now(max_length)} if texts are cut"
    if lr is not None and lr >= SMALL_MODEL_LR:
        return f"{more_steps}, {longer}, or try another {advice['lr']}{now(lr)}"
    used = f"now {lr:g}; " if lr is not None else ""
    return f"raise {advice['lr']} ({used}small models want {SMALL_MODEL_LR:g} or more), {more_steps}, or {longer}"


def learning_warnings(report: dict, scores: pd.DataFrame, subsets: list[dict], n_runs: int, *, config: dict | None = None,
                      advice: dict[str, str] = CLI_ADVICE) -> list[str]:
    """Plain-language warnings with what to change (`config`: the runs' settings, for the advice); empty
    when the scores look meaningful."""
    fix = what_to_change(config, advice=advice)
    out = []
    weak = [r for r in report["runs"] if not learned(report, r)]
    if weak:
        accs = ", ".join(f"run {r['run']}: {r['train_accuracy'][-1]:.2f}"
                         + (f" (balanced {r['train_balanced_accuracy'][-1]:.2f})" if "train_balanced_accuracy" in r else "") for r in weak)
        out.append(
            f"{len(weak)} of {len(report['runs'])} scoring runs did not clearly learn the task (last-epoch training accuracy {accs}; "
            f"{report.get('baseline_name', 'majority-class baseline')} {report['majority_baseline']:.2f}); their H-scores reflect the label more than difficulty: {fix}"
        )
    labels = scores["label"].astype(str)
    explained = label_share_of_h_variance(scores["h_score"].to_numpy(), labels.to_numpy())
    if explained >= LABEL_VARIANCE_SHARE:
        out.append(f"the H-score is mostly explained by the label: the class accounts for {explained:.0%} of the variance of H, "
                   f"so subsets pick classes rather than hard or easy examples; {fix}")
    share = labels.value_counts(normalize=True)
    for h, what in ((n_runs, f"H = {n_runs} (always right)"), (0, "H = 0 (never learned)")):
        group = labels[scores["h_score"] == h]
        if len(group) < MIN_GROUP:
            continue
        top, top_share = group.value_counts(normalize=True).index[0], group.value_counts(normalize=True).iloc[0]
        if top_share >= LABEL_DOMINANCE and share[top] < MAX_CLASS_SHARE:
            out.append(
                f"the H-score is mostly explained by the label: class {top!r} holds {top_share:.0%} of {what} "
                f"but {share[top]:.0%} of the data; {fix}"
            )
    for s in subsets:
        starved = starved_classes(s, scores)
        if starved and (s["name"] == WINNING_TICKET or s.get("paper")):
            counts = ", ".join(f"{c}: {s['per_class'][c]}" for c in starved)
            out.append(f"subset {s['name']} leaves classes with no or very few examples ({counts}); check the per-class table before training on it")
    return out


def learned_rule(report: dict) -> str:
    """One line: the baseline(s) and what counts as learned."""
    line = f"{report.get('baseline_name', 'majority-class baseline')} {report['majority_baseline']:.3f}; a run has learned above {report['learned_threshold']:.3f}"
    if "balanced_threshold" in report:
        line += f" accuracy or {report['balanced_threshold']:.3f} balanced accuracy (chance {report['balanced_chance']:.3f})"
    return line


def format_learning_report(report: dict) -> str:
    lines = [learned_rule(report)]
    for r in report["runs"]:
        line = f"  run {r['run']} (seed {r['seed']}): train acc " + " ".join(f"{a:.3f}" for a in r["train_accuracy"])
        if "train_balanced_accuracy" in r:
            line += " | balanced " + " ".join(f"{a:.3f}" for a in r["train_balanced_accuracy"])
        if "eval_accuracy" in r:
            line += " | eval acc " + " ".join(f"{a:.3f}" for a in r["eval_accuracy"])
        lines.append(line)
    return "\n".join(lines)
