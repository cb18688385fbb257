"""Hyper-parameter defaults. The paper's were tuned for RoBERTa-large on large data; on a small model
and small data they leave the scoring runs unlearned, which makes H meaningless (METHOD.md, last
section). hprune's defaults depend on the model's size and the training set's size (docs/defaults.md
has the measurements behind them)."""
from __future__ import annotations

from .errors import HpruneError
from .training import TrainConfig

# The paper's protocol (arXiv 2407.08887): lr 2e-5, batch 32, max length 128, linear schedule, no warm-up.
PAPER_SETTINGS = {"lr": 2e-5, "batch_size": 32, "max_length": 128, "warmup_ratio": 0.0, "epochs": 3}

SMALL_MODEL_PARAMS = 100_000_000  # below: a MiniLM/DistilBERT-sized model that wants a larger step
SMALL_MODEL_LR = 1e-4  # measured on minilm (docs/defaults.md); the paper's 2e-5 does not learn TREC-1k
LARGE_MODEL_LR = 2e-5  # the paper's, for RoBERTa-large-sized models
SMALL_DATA = 20_000  # below: batch 16, so an epoch has enough steps to learn within epoch 1
HPRUNE_SETTINGS = {"max_length": 128, "warmup_ratio": 0.06, "epochs": 3}
# Classification: class-balanced loss, so a rare class is learned in epoch 1 and its examples can be always right
# (without it TREC-1k's 18 ABBR questions all had H = 0 and no winning ticket held one; docs/defaults.md).
CLASSIFICATION_SETTINGS = {"class_weight": "balanced"}
# Extractive QA: the paper's E = 2; windows of 384 tokens (Hugging Face's SQuAD default: contexts are long).
TASK_SETTINGS = {"extractive-qa": {"max_length": 384, "epochs": 2}}


def train_config(*, paper_settings: bool = False, n_examples: int | None = None, model: str | None = None, task_type: str | None = None,
                 **overrides) -> TrainConfig:
    """A TrainConfig from the chosen defaults, with the user's explicit options on top (None = default).

    lr and batch size default by size: `model` (its parameter count) and `n_examples` (the full
    training set, also for a fine-tune on a subset, so subset and full set train alike).
    """
    base = {**(PAPER_SETTINGS if paper_settings else HPRUNE_SETTINGS), **TASK_SETTINGS.get(task_type, {})}
    given = {k: v for k, v in overrides.items() if v is not None}
    classification = task_type in (None, "classification")
    if given.get("class_weight") not in (None, "none") and not classification:
        raise HpruneError(f"--class-weight applies to classification, not to {task_type}; leave it out")
    if not paper_settings:
        if classification:
            base.update(CLASSIFICATION_SETTINGS)
        if "lr" not in given:
            base["lr"] = SMALL_MODEL_LR if model is None or count_parameters(model) < SMALL_MODEL_PARAMS else LARGE_MODEL_LR
        if "batch_size" not in given:
            base["batch_size"] = 16 if n_examples is not None and n_examples < SMALL_DATA else 32
    base.update(given)
    if base.get("class_weight") == "none":
        base["class_weight"] = None
    return TrainConfig(**base)


def count_parameters(model: str) -> int:
    """Parameters of a model, counted on the meta device: no weights are read."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from .models import resolve_model

    try:
        config = AutoConfig.from_pretrained(resolve_model(model))
    except (OSError, ValueError):
        return 0  # unknown here (e.g. a GGUF file); the loader reports real problems
    with torch.device("meta"):
        net = AutoModelForSequenceClassification.from_config(config)
    return sum(p.numel() for p in net.parameters())
