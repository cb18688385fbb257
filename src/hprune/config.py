"""THE defaults: every hyper-parameter of a fine-tune with its help text, and the rules that pick the ones
that depend on the model's size, the data's size and the task kind. The CLI's options and the Python API's
keyword arguments are both made from this module, so they train alike.

The paper's settings were tuned for RoBERTa-large on large data; on a small model and small data they
leave the scoring runs unlearned, which makes H meaningless (docs/defaults.md has the measurements).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import HpruneError

TASK_TYPES = ("classification", "multiple-choice", "extractive-qa")
CLASSIFICATION = TASK_TYPES[0]

# The paper's protocol (arXiv 2407.08887): lr 2e-5, batch 32, max length 128, linear schedule, no warm-up.
PAPER_SETTINGS = {"lr": 2e-5, "batch_size": 32, "max_length": 128, "warmup_ratio": 0.0, "epochs": 3, "class_weight": None}
SMALL_MODEL_PARAMS = 100_000_000  # below: a MiniLM/DistilBERT-sized model that wants a larger step
SMALL_MODEL_LR = 1e-4  # measured on minilm (docs/defaults.md); the paper's 2e-5 does not learn TREC-1k
LARGE_MODEL_LR = 2e-5  # the paper's, for RoBERTa-large-sized models
SMALL_DATA = 20_000  # below: smaller batches, so an epoch has enough steps to learn within epoch 1
SMALL_DATA_BATCH, LARGE_DATA_BATCH = 16, 32
# Extractive QA: the paper's E = 2; windows of 384 tokens (Hugging Face's SQuAD default: contexts are long).
TASK_SETTINGS = {"extractive-qa": {"max_length": 384, "epochs": 2}}


def _option(default, help: str, rule: str | None = None):
    """A hyper-parameter: its default, what it is, and how the default changes with the model, data or task
    (`rule` continues "default X", e.g. " below 20,000 examples, else 32")."""
    return field(default=default, metadata={"help": help, "rule": rule})


@dataclass
class TrainConfig:
    """Hyper-parameters of one fine-tune. The field defaults are hprune's for a model under 100M parameters on
    fewer than 20,000 classification examples; `train_config` picks them for any model, data size and task."""

    epochs: int = _option(3, "epochs per fine-tune", f"; extractive QA: {TASK_SETTINGS['extractive-qa']['epochs']}")
    lr: float = _option(SMALL_MODEL_LR, "peak learning rate",
                        f" for models under {SMALL_MODEL_PARAMS // 1_000_000}M parameters, else {LARGE_MODEL_LR:g}; --paper-settings: {PAPER_SETTINGS['lr']:g}")
    batch_size: int = _option(SMALL_DATA_BATCH, "examples per micro-batch",
                              f" below {SMALL_DATA:,} training examples, else {LARGE_DATA_BATCH}; --paper-settings: {PAPER_SETTINGS['batch_size']}")
    grad_accum: int = _option(1, "micro-batches per optimizer step")
    warmup_ratio: float = _option(0.06, "share of steps with linear warm-up", f"; --paper-settings: {PAPER_SETTINGS['warmup_ratio']:g}")
    weight_decay: float = _option(0.01, "AdamW weight decay")
    max_length: int = _option(128, "truncate inputs to this many tokens",
                              f"; extractive QA: {TASK_SETTINGS['extractive-qa']['max_length']}, longer contexts are split into overlapping windows")
    bf16: bool = _option(False, "bfloat16 autocast (faster on CPUs with avx512_bf16 and on GPUs)")
    length_grouped: bool = _option(True, "length-grouped batches (--no-length-grouping: random ones)")
    # "balanced": weight each class's loss by n / (K * its count), so a rare class is learned in epoch 1 and its
    # examples can be always right (without it TREC-1k's 18 ABBR questions all had H = 0; docs/defaults.md).
    class_weight: str | None = _option("balanced", "classification loss weights: balanced (each class weighs the same, so rare "
                                       "classes are learned in epoch 1) or none", "; other task kinds and --paper-settings: none")

    def to_dict(self) -> dict:
        return asdict(self)


TRAIN_OPTIONS = tuple(f.name for f in fields(TrainConfig))  # the keyword options of HScorer and finetune


def option_help(name: str) -> str:
    """The help line of a TrainConfig field, with its default and how that default changes."""
    f = next(f for f in fields(TrainConfig) if f.name == name)
    if isinstance(f.default, bool):
        return f.metadata["help"]
    rule = f.metadata["rule"] or ""
    default = "none" if f.default is None else f"{f.default:g}" if isinstance(f.default, float) else f.default
    return f"{f.metadata['help']} (default {default}{rule})"


def train_config(*, paper_settings: bool = False, n_examples: int | None = None, model_parameters: int | None = None,
                 task_type: str | None = None, **overrides) -> TrainConfig:
    """A TrainConfig from the defaults, with the user's explicit options on top (None = default).

    lr and batch size default by size: `model_parameters` (the model's parameter count; None: small) and
    `n_examples` (the full training set, also for a fine-tune on a subset, so subset and full set train alike;
    None: large).
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    classification = task_type in (None, CLASSIFICATION)
    if given.get("class_weight") not in (None, "none") and not classification:
        raise HpruneError(f"--class-weight applies to classification, not to {task_type}; leave it out")
    if paper_settings:
        chosen = dict(PAPER_SETTINGS)
    else:
        small_model = model_parameters is None or model_parameters < SMALL_MODEL_PARAMS
        small_data = n_examples is not None and n_examples < SMALL_DATA
        chosen = {"lr": SMALL_MODEL_LR if small_model else LARGE_MODEL_LR, "batch_size": SMALL_DATA_BATCH if small_data else LARGE_DATA_BATCH}
    chosen.update(TASK_SETTINGS.get(task_type, {}))
    if not classification:
        chosen["class_weight"] = None
    chosen.update(given)
    if chosen.get("class_weight") == "none":
        chosen["class_weight"] = None
    return TrainConfig(**chosen)


@dataclass
class ScoreConfig:
    """What defines a scoring: changing any of it makes earlier runs in the folder unusable."""

    model: str = "minilm"
    runs: int = 6
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    # Train and score only the first score_epochs epochs of the train.epochs schedule (the learning rate
    # follows the whole schedule): score_epochs / epochs of the cost (docs/cheap-scoring.md). None: all.
    score_epochs: int | None = None

    def seeds(self) -> list[int]:
        return [self.seed + r for r in range(self.runs)]

    def scored_epochs(self) -> int:
        return self.score_epochs or self.train.epochs

    def to_dict(self) -> dict:
        # score_epochs only when set, so that every scoring made before it keeps its identity
        cheap = {"score_epochs": self.score_epochs} if self.score_epochs else {}
        return {"model": self.model, "runs": self.runs, "seed": self.seed, "seeds": self.seeds(), **self.train.to_dict(), **cheap}


# What `hprune compare` fills each subset's size with when --methods is not given ("hscore": the subset
# itself); the budget rules are not among them: docs/budget.md shows none beating random at every budget.
COMPARE_METHODS = ("hscore", "random", "ambiguous", "forgetting", "el2n", "aum")
# Selection at a budget (--fraction / --size): the rule used when no --method is given. One of
# subsets.BUDGET_METHODS; in docs/budget.md the rule never below random and above it most often.
DEFAULT_SELECTION = "hscore-adaptive"
# The stratified rules (CCS, Zheng et al. ICLR 2023) first cut the hardest examples, likely mislabelled:
H0_CUT = 0.5  # hscore-*: this share of the H = 0 examples, those of lowest confidence
CCS_HARD_CUT = 0.05  # ccs: this share of all examples, those of lowest AUM
CCS_STRATA = 50  # ccs: equal-width strata over the AUM range (CCS's k)

CACHE_DIR_ENV = "HPRUNE_CACHE_DIR"


def tokenized_cache_dir() -> Path:
    """Where tokenized training data is cached (data.encoded), shared by every --out so that another command on
    the same data skips tokenizing: $HPRUNE_CACHE_DIR/tokenized, else $XDG_CACHE_HOME/hprune/tokenized, else
    ~/.cache/hprune/tokenized."""
    root = os.environ.get(CACHE_DIR_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hprune"
    return Path(root).expanduser() / "tokenized"


MODEL_HELP = ("'minilm' (offline all-MiniLM-L6-v2), 'smollm2' (offline SmolLM2-135M, README: Decoder models), a checkpoint folder, "
              "a .gguf file, or a hub name")
