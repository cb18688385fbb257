"""Hyper-parameter defaults. The paper's were tuned for RoBERTa-large on large data; on a small model
they can leave the scoring runs unlearned, which makes H meaningless (METHOD.md, last section)."""
from __future__ import annotations

from .training import TrainConfig

# The paper's protocol (arXiv 2407.08887): lr 2e-5, batch 32, max length 128, linear schedule, no warmup.
PAPER_SETTINGS = {"lr": 2e-5, "batch_size": 32, "max_length": 128, "warmup_ratio": 0.0, "epochs": 3}

# hprune's defaults, measured on minilm over the tasks in ../shared/data (docs/defaults.md).
HPRUNE_SETTINGS = {"lr": 1e-4, "batch_size": 32, "max_length": 128, "warmup_ratio": 0.1, "epochs": 3}


def train_config(*, paper_settings: bool = False, **overrides) -> TrainConfig:
    """A TrainConfig from the chosen defaults, with the user's explicit options on top (None = default)."""
    base = dict(PAPER_SETTINGS if paper_settings else HPRUNE_SETTINGS)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**base)
