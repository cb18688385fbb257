import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared(task: str, split: str) -> Path:
    path = SHARED_DATA / task / f"{split}.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found: ../shared/data must sit beside the checkout")
    return path


def head_rows(task: str, split: str, n: int, dest: Path) -> Path:
    """The first n rows of a shared data file, written to a temporary file (never into the repo)."""
    lines = shared(task, split).read_text(encoding="utf-8").splitlines()[:n]
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


def trec_files(tmp: Path, n_train: int, n_eval: int) -> tuple[Path, Path]:
    """Slices of real TREC train and test in a temporary folder."""
    return head_rows("trec", "train", n_train, tmp / "train.jsonl"), head_rows("trec", "test", n_eval, tmp / "test.jsonl")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_score(train: Path, model: str, out: Path, *, runs: int, epochs: int) -> tuple[list[str], dict]:
    """`hprune score` on two gloo processes, one thread each: the command and its environment."""
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "hprune", "score", "--train", str(train), "--model", model, "--runs", str(runs), "--epochs", str(epochs),
           "--batch-size", "8", "--lr", "1e-3", "--out", str(out), "--quiet"]
    return cmd, env


@pytest.fixture(scope="session", autouse=True)
def tokenized_cache(tmp_path_factory) -> Path:
    """Every test's tokenized-data cache (hprune.config.tokenized_cache_dir) in a temporary folder, not the
    home folder; subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("hprune-cache")
    os.environ["HPRUNE_CACHE_DIR"] = str(folder)
    return folder / "tokenized"


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A random 2-layer BERT (hidden 32) with the real bert-base-uncased vocabulary from the MiniLM package."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from hprune.engine.models import resolve_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model("minilm")).save_pretrained(folder)
    return str(folder)


def classifier_without_dropout(model: str, label_names: list[str], seed: int = 0):
    """Tokenizer and classifier (head seeded by `seed`) with dropout off: at lr = 0 a training step's
    logits for an example then depend on that example alone, not on its batch, order or step."""
    import torch

    from hprune.engine.models import load_classifier
    from hprune.engine.loop import seed_everything

    seed_everything(seed)
    tokenizer, net = load_classifier(model, label_names)
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return tokenizer, net


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared machine: one torch thread for a module (two ran many times slower here
    under load), restored after it. Opt in: `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
