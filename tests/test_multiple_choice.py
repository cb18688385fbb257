"""Multiple choice (hprune.tasks.multiple_choice) on real OpenBookQA and ARC-Easy rows with a tiny random
BERT: detection and validation, the multiple-choice head, questions with different numbers of choices
(masked dummy choices change nothing), recording by question id, and score -> subsets -> export -> train
through the CLI."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import head_rows, shared
from hprune.cli import main
from hprune.dynamics.record import DynamicsRecorder
from hprune.dynamics.store import RunDynamics
from hprune.tasks.base import step_statistics
from hprune.engine.models import load_model
from hprune.tasks import detect_task_type, get_task, load_task_data
from hprune.config import TrainConfig
from hprune.engine.loop import fine_tune, predict, seed_everything

MC = "multiple-choice"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def arc(tmp_path_factory):
    """ARC-Easy rows with 3, 4 and 5 choices."""
    rows = [json.loads(line) for line in shared("arc_easy", "train").read_text(encoding="utf-8").splitlines()]
    picked = [r for r in rows if len(r["choices"]) == 3][:3] + [r for r in rows if len(r["choices"]) == 5][:3] + rows[:6]
    path = tmp_path_factory.mktemp("arc") / "arc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in picked), encoding="utf-8")
    return path


def _no_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def test_detected_loaded_and_fingerprinted(arc, tmp_path):
    data = load_task_data(str(arc))
    assert data.task_type == MC and len(data) == 12
    assert [len(e["choices"]) for e in data.examples][:6] == [3, 3, 3, 5, 5, 5]
    rows = [json.loads(line) for line in arc.read_text().splitlines()]
    assert data.labels.tolist() == [r["label"] for r in rows] and data.label_names == ["0", "1", "2", "3", "4"]
    assert detect_task_type(pd.DataFrame(rows)) == MC
    # Reordering a question's choices (and its label with them) is other data: another fingerprint.
    rows[0]["choices"] = rows[0]["choices"][::-1]
    rows[0]["label"] = len(rows[0]["choices"]) - 1 - rows[0]["label"]
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_task_data(str(other)).fingerprint != data.fingerprint


@pytest.mark.parametrize("change,message", [
    ({"label": 4}, "label 4 in column 'label' is not the index of one of the 4 choices"),
    ({"label": "B"}, "is not the index of one of the 4 choices"),
    ({"choices": ["only one"]}, "'choices' is not a list of two or more non-empty texts"),
    ({"question": ""}, "empty, missing or non-text 'question' at row 1"),
])
def test_bad_rows_are_one_error_line(tmp_path, capsys, change, message):
    rows = [json.loads(line) for line in head_rows("openbookqa", "train", 3, tmp_path / "t.jsonl").read_text().splitlines()]
    rows[1].update(change)
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", "--train", str(tmp_path / "bad.jsonl"), "--runs", "2", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_task_type_option_overrides_detection(tmp_path, capsys):
    train = head_rows("openbookqa", "train", 5, tmp_path / "t.jsonl")
    assert main(["score", "--train", str(train), "--task-type", "classification", "--runs", "2", "--out", str(tmp_path / "o")]) == 2
    assert "no text column found" in capsys.readouterr().err


def test_dummy_choices_change_nothing(arc, tiny_bert):
    """A question's logits are the same alone and in a batch padded with dummy choices to 5; the dummies
    get -inf, no probability and no gradient."""
    task = get_task(MC)
    data = load_task_data(str(arc))
    seed_everything(0)
    tokenizer, model = load_model(tiny_bert, data.label_names, MC)
    assert type(model).__name__ == "BertForMultipleChoice"
    model.eval()
    enc = task.encode(tokenizer, data, 64)
    batch = task.collate(tokenizer, enc.features, np.arange(len(data)), "cpu")
    assert batch["input_ids"].shape[:2] == (12, 5) and batch["choice_mask"].sum(1).tolist() == [3, 3, 3, 5, 5, 5] + [4] * 6
    together = task.forward(model, batch)
    for i in range(len(data)):
        alone = task.forward(model, task.collate(tokenizer, enc.features, np.array([i]), "cpu"))[0]
        n = len(data.examples[i]["choices"])
        torch.testing.assert_close(together[i, :n], alone[:n], atol=1e-5, rtol=1e-4)
        assert torch.isinf(together[i, n:]).all()
    stats = task.statistics(together, torch.as_tensor(enc.targets))
    assert torch.isfinite(stats["margins"]).all() and torch.isfinite(stats["el2n"]).all()
    task.loss(together, torch.as_tensor(enc.targets)).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_statistics_over_the_real_choices_by_hand():
    inf = float("inf")
    logits = torch.tensor([[1.0, 3.0, 0.0, -inf, -inf], [2.0, 0.0, 1.0, 0.5, 4.0]])
    stats = get_task(MC).statistics(logits, torch.tensor([1, 2]))
    assert stats["correct"].tolist() == [True, False]
    assert stats["margins"].tolist() == pytest.approx([2.0, -3.0])
    assert stats["probs"][0].item() == pytest.approx(float(torch.tensor([1.0, 3.0, 0.0]).softmax(0)[1]))


def test_recorded_by_question_id(arc, tiny_bert):
    """lr = 0, no dropout: what each step recorded for a question equals a separate prediction, under
    reshuffled, length-grouped batches mixing 3-, 4- and 5-choice questions."""
    task = get_task(MC)
    data = load_task_data(str(arc))
    seed_everything(0)
    tokenizer, model = load_model(tiny_bert, data.label_names, MC)
    _no_dropout(model)
    enc = task.encode(tokenizer, data, 64)
    dyn = RunDynamics.empty(2, len(data))
    recorder = DynamicsRecorder(dyn, statistics=task.statistics)
    fine_tune(model, tokenizer, enc.features, enc.targets, TrainConfig(epochs=2, lr=0.0, batch_size=5, warmup_ratio=0.0),
              seed=1, on_step=recorder.record, task=task)
    outputs = predict(model, tokenizer, enc.features, task=task)
    assert [len(o) for o in outputs] == [len(e["choices"]) for e in data.examples]
    for i, out in enumerate(outputs):
        want = step_statistics(torch.from_numpy(out[None]), torch.tensor([enc.targets[i]]))
        for epoch in range(2):
            assert dyn.correct[epoch, i] == want["correct"].item()
            assert dyn.probs[epoch, i] == pytest.approx(want["probs"].item(), abs=2e-3)


def test_score_subsets_export_train(tmp_path, tiny_bert, capsys):
    train = head_rows("openbookqa", "train", 40, tmp_path / "train.jsonl")
    evalf = head_rows("openbookqa", "test", 20, tmp_path / "test.jsonl")
    out = tmp_path / "scores"
    common = ["--model", tiny_bert, "--epochs", "1", "--lr", "1e-3", "--threads", "1", "--quiet"]
    assert main(["score", "--train", str(train), "--eval", str(evalf), "--runs", "2", "--out", str(out), *common]) == 0
    scores = pd.read_parquet(out / "scores.parquet")
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    assert scores["example_id"].tolist() == list(range(40)) and scores["label"].tolist() == [str(r["label"]) for r in rows]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task_type"] == MC and all(len(r["eval_accuracy"]) == 1 for r in manifest["learning_report"]["runs"])
    capsys.readouterr()
    assert main(["subsets", str(out)]) == 0
    assert "winning-ticket" in capsys.readouterr().out

    exported = tmp_path / "wt.jsonl"
    assert main(["export", str(out), "--out", str(exported)]) == 0
    keep = scores["example_id"][scores["h_score"] == 1].to_numpy()
    assert len(keep) > 0
    lines = train.read_text().splitlines()
    assert exported.read_text().splitlines() == [json.dumps(json.loads(lines[i]), ensure_ascii=False) for i in keep]

    assert main(["train", "--train", str(train), "--eval", str(evalf), "--subset", f"{out}:winning-ticket",
                 "--out", str(tmp_path / "t"), *common]) == 0
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())["metrics"]
    assert metrics["train_size"] == len(keep) and 0 <= metrics["accuracy"] <= 1 and "macro_f1" not in metrics
