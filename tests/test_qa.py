"""Extractive QA (hprune.tasks.extractive_qa) on real SQuAD v2 rows with a tiny random BERT: the SQuAD v2
metric on hand-computed cases, long contexts split into features with gold positions, the per-question
aggregation rule on hand-built features, recording each feature once, span decoding, the `split`
command, and score -> subsets -> export -> train -> compare through the CLI."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import shared
from hprune.cli import main
from hprune.dynamics.record import FeatureRecorder, aggregate_features
from hprune.dynamics.store import FIELDS, RunDynamics
from hprune.engine.models import load_model
from hprune.tasks import Encoded, get_task, load_task_data
from hprune.tasks.extractive_qa import best_span, predict_answers, qa_statistics
from hprune.tasks.squad import normalize_answer, squad_v2_scores
from hprune.config import TrainConfig
from hprune.engine.loop import fine_tune, predict, seed_everything

QA = "extractive-qa"
pytestmark = pytest.mark.usefixtures("one_thread")


def squad_rows(tmp_path, rows: slice, name: str = "squad.jsonl"):
    lines = shared("squad_v2", "validation").read_text(encoding="utf-8").splitlines()[rows]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- the SQuAD v2 metric ----

def test_normalisation():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear and THE plum.") == "apple pear and plum"
    assert normalize_answer("Theory") == "theory"  # an article only as a whole word


@pytest.mark.parametrize("golds,prediction,exact,f1", [
    (["Denver Broncos"], "the Denver Broncos.", 1, 1),
    (["Denver Broncos"], "Broncos", 0, 2 * 1 * 0.5 / 1.5),  # precision 1, recall 1/2
    (["Denver Broncos", "Broncos"], "Broncos", 1, 1),  # the best gold answer counts
    (["in October 1973"], "October 1973 crisis", 0, 2 * (2 / 3) * (2 / 3) / (4 / 3)),
    (["1979"], "1973", 0, 0),
    ([], "", 1, 1),  # unanswerable, no answer given: right
    ([], "the oil crisis", 0, 0),  # unanswerable, an answer given: wrong
    (["October"], "", 0, 0),  # answerable, no answer given: wrong
    (["the"], "", 1, 1),  # a gold answer that normalises to nothing does not count: unanswerable
    (["a b a"], "a", 0, 0),  # "a" is an article: the prediction normalises to nothing
    (["x y x"], "x x z", 0, 2 * (2 / 3) * (2 / 3) / (4 / 3)),  # common tokens counted with multiplicity
])
def test_squad_v2_metric_by_hand(golds, prediction, exact, f1):
    scores = squad_v2_scores([golds], [prediction])
    assert scores["exact"] == exact and scores["f1"] == pytest.approx(f1)


def test_metric_averages_over_questions():
    scores = squad_v2_scores([["a cat"], [], ["dog"]], ["cat", "", "a bird"])
    assert scores == {"exact": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3)}


# ---- features, targets and the aggregation rule ----

def test_long_contexts_split_into_features_with_gold_positions(tmp_path, tiny_bert):
    data = load_task_data(str(squad_rows(tmp_path, slice(0, 12))))
    assert data.task_type == QA and data.label_names == ["answerable", "unanswerable"]
    task = get_task(QA)
    tokenizer, model = load_model(tiny_bert, data.label_names, QA)
    assert type(model).__name__ == "BertForQuestionAnswering"
    enc = task.encode(tokenizer, data, 64)
    assert len(enc.features) > len(data) and sorted(set(enc.example_index)) == list(range(len(data)))
    assert all(len(f["input_ids"]) <= 64 for f in enc.features)
    has_answer_feature = [(enc.targets[enc.example_index == i, 0] > 0).any() for i in range(len(data))]
    for f, (s, e) in enumerate(enc.targets):
        i = enc.example_index[f]
        if s == 0:  # no answer in this window: both targets at [CLS]; relevant only if no window holds it
            assert e == 0 and enc.relevant[f] == (not has_answer_feature[i])
        else:
            example = data.examples[i]
            assert 0 < s <= e and example["context"][enc.offsets[f][s, 0]:enc.offsets[f][e, 1]] == example["answers"][0]
            assert enc.relevant[f]
    assert not any(has_answer_feature[i] for i, e in enumerate(data.examples) if not e["answers"])
    assert sum(has_answer_feature) > 0
    # An answer inside the overlap of two windows is the target of both.
    assert any((enc.example_index[f] == enc.example_index[f + 1]) and enc.targets[f, 0] and enc.targets[f + 1, 0]
               for f in range(len(enc.targets) - 1))


def test_qa_statistics_by_hand():
    inf = float("inf")
    logits = torch.tensor([[[0.0, 2.0, 1.0, -inf], [0.0, 1.0, 3.0, -inf]]])
    stats = qa_statistics(logits, torch.tensor([[1, 2]]))
    p_start, p_end = torch.tensor([0.0, 2.0, 1.0]).softmax(0), torch.tensor([0.0, 1.0, 3.0]).softmax(0)
    assert stats["correct"].tolist() == [True]
    assert stats["probs"].item() == pytest.approx(float(p_start[1] * p_end[2]))
    assert stats["margins"].item() == pytest.approx(1.0)  # min(2 - 1, 3 - 1)
    el2n_start = float(torch.linalg.norm(p_start - torch.tensor([0.0, 1, 0])))
    el2n_end = float(torch.linalg.norm(p_end - torch.tensor([0.0, 0, 1])))
    assert stats["el2n"].item() == pytest.approx((el2n_start + el2n_end) / 2)
    wrong_end = qa_statistics(logits, torch.tensor([[1, 1]]))
    assert wrong_end["correct"].tolist() == [False] and wrong_end["margins"].item() == pytest.approx(-2.0)


# Hand-built features: question 0 has its answer in feature 1 of 3; question 1 is unanswerable (2 features);
# question 2 has one feature; question 3 has its answer in the overlap of both its features.
EXAMPLE = np.array([0, 0, 0, 1, 1, 2, 3, 3])
RELEVANT = np.array([False, True, False, True, True, True, True, True])


def test_aggregation_rule_on_hand_built_features():
    stats = {
        "correct": np.array([0, 1, 0, 1, 0, 1, 1, 0], dtype=np.uint8),
        "probs": np.array([0.1, 0.7, 0.2, 0.9, 0.4, 0.5, 0.8, 0.3]),
        "margins": np.array([-1.0, 2.0, -3.0, 1.5, -0.5, 0.2, 1.0, -0.1]),
        "el2n": np.array([0.9, 0.3, 0.8, 0.1, 0.7, 0.5, 0.2, 0.6]),
    }
    out = aggregate_features(stats, EXAMPLE, RELEVANT, 4)
    # 0: only its answer feature counts (right), however wrong the others; 1: unanswerable, every feature
    # must be right (one is not); 2: its one feature; 3: both answer features must be right (one is not).
    assert out["correct"].tolist() == [True, False, True, False]
    assert out["probs"].tolist() == pytest.approx([0.7, 0.4, 0.5, 0.3])  # min over relevant features
    assert out["margins"].tolist() == pytest.approx([2.0, -0.5, 0.2, -0.1])
    assert out["el2n"].tolist() == pytest.approx([0.3, 0.7, 0.5, 0.6])  # max over relevant features
    with pytest.raises(ValueError, match="relevant feature"):
        aggregate_features(stats, EXAMPLE, RELEVANT & (EXAMPLE != 2), 4)


def _given(logits, labels):
    """Statistics that are the logits' columns, to drive the recorder with known per-feature values."""
    return {"correct": logits[:, 0] > 0, "probs": logits[:, 1], "margins": logits[:, 2], "el2n": logits[:, 3]}


def test_feature_recorder_records_each_feature_once_and_aggregates_at_epoch_end():
    dyn = RunDynamics.empty(2, 4)
    recorder = FeatureRecorder(dyn, EXAMPLE, RELEVANT, statistics=_given)
    values = torch.tensor([[0, .1, -1, .9], [1, .7, 2, .3], [0, .2, -3, .8], [1, .9, 1.5, .1],
                           [1, .4, -.5, .7], [1, .5, .2, .5], [1, .8, 1, .2], [1, .3, -.1, .6]])
    labels = torch.zeros(8, dtype=torch.long)
    for epoch in range(2):
        order = np.random.default_rng(epoch).permutation(8)
        for batch in (order[:3], order[3:]):  # features of one question in different batches
            recorder.record(epoch, batch, values[batch], labels[batch])
        assert len(recorder.missing(epoch)) == 0
        recorder.end_epoch(epoch)
    assert dyn.correct.tolist() == [[1, 1, 1, 1]] * 2
    assert dyn.probs[1].tolist() == pytest.approx([0.7, 0.4, 0.5, 0.3], abs=1e-3)
    with pytest.raises(RuntimeError, match="recorded twice"):
        recorder.record(1, np.array([5]), values[[5]], labels[[5]])
    fresh = FeatureRecorder(RunDynamics.empty(1, 4), EXAMPLE, RELEVANT, statistics=_given)
    fresh.record(0, np.array([0, 1, 2]), values[:3], labels[:3])
    assert fresh.missing(0).tolist() == [3, 4, 5, 6, 7]


def test_recorded_per_feature_and_aggregated_per_question(tmp_path, tiny_bert):
    """lr = 0, no dropout: each question's recorded record equals the aggregate of separate predictions
    of its features, though its features were trained in different, reshuffled batches."""
    data = load_task_data(str(squad_rows(tmp_path, slice(0, 10))))
    task = get_task(QA)
    seed_everything(0)
    tokenizer, model = load_model(tiny_bert, data.label_names, QA)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    enc = task.encode(tokenizer, data, 64)
    dyn = RunDynamics.empty(2, len(data))
    recorder = FeatureRecorder(dyn, enc.example_index, enc.relevant, statistics=task.statistics)

    def on_epoch_end(epoch, state):
        assert len(recorder.missing(epoch)) == 0
        recorder.end_epoch(epoch)

    fine_tune(model, tokenizer, enc.features, enc.targets, TrainConfig(epochs=2, lr=0.0, batch_size=6, warmup_ratio=0.0),
              seed=2, on_step=recorder.record, on_epoch_end=on_epoch_end, task=task)
    outputs = predict(model, tokenizer, enc.features, task=task)
    per_feature = {k: [] for k in FIELDS}
    for out, target in zip(outputs, enc.targets):
        for k, v in qa_statistics(torch.from_numpy(out[None]), torch.from_numpy(target[None])).items():
            per_feature[k].append(v.item())
    want = aggregate_features({k: np.array(v) for k, v in per_feature.items()}, enc.example_index, enc.relevant, len(data))
    for epoch in range(2):
        np.testing.assert_array_equal(dyn.correct[epoch].astype(bool), want["correct"])
        np.testing.assert_allclose(dyn.probs[epoch], want["probs"], atol=1e-4)
        np.testing.assert_allclose(dyn.margins[epoch], want["margins"], atol=1e-2)


# ---- decoding answers ----

def test_best_span_keeps_start_before_end_short_and_inside_the_context():
    start = np.array([9.0, 1.0, 5.0, 0.0, 0.0])
    end = np.array([9.0, 6.0, 0.0, 0.0, 3.0])
    valid = np.array([False, True, True, True, True])  # position 0 (the null answer) is no span
    assert best_span(start, end, valid) == (8.0, 2, 4)  # not (2, 1): 5 + 6 but end before start
    assert best_span(start, end, valid, max_tokens=2) == (7.0, 1, 1)  # (2, 4) is 3 tokens long
    assert best_span(start, end, np.zeros(5, dtype=bool))[1:] == (-1, -1)


def test_predict_answers_from_features_against_the_null_score():
    context = "The oil crisis began in October 1973 in the Gulf."
    # Two features of one question; tokens: [CLS] then words of the context (offsets), -1 outside it.
    words = [(0, 3), (4, 7), (8, 14), (15, 20), (21, 23), (24, 31), (32, 36)]
    offsets = np.array([(-1, -1), *words], dtype=np.int64)
    enc = Encoded(features=[{}, {}], targets=np.zeros((2, 2), dtype=np.int64), example_index=np.array([0, 0]), n_examples=1,
                  relevant=np.array([True, True]), offsets=[offsets, offsets], ids=np.array([0]))

    def out(span_score, null):
        start, end = np.full(8, -5.0), np.full(8, -5.0)
        start[0] = end[0] = null / 2
        start[6], end[7] = span_score / 2, span_score / 2  # "October 1973"
        return np.stack([start, end])

    assert predict_answers([out(4.0, 1.0), out(0.0, 2.0)], enc, [context]) == ["October 1973"]
    # The null score is the minimum over features (1.0 here), and wins when it beats the best span.
    assert predict_answers([out(0.5, 1.0), out(0.0, 3.0)], enc, [context]) == [""]


# ---- the squad split ----

def _three_articles(tmp_path):
    rows = [json.loads(line) for line in shared("squad_v2", "validation").read_text(encoding="utf-8").splitlines()]
    titles = list(dict.fromkeys(r["title"] for r in rows))[:3]
    picked = [r for t in titles for r in [r for r in rows if r["title"] == t][:5]]
    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in picked), encoding="utf-8")
    return path, titles


def test_split_by_article(tmp_path, capsys):
    source, titles = _three_articles(tmp_path)
    out = tmp_path / "split"
    assert main(["split", str(source), "--out", str(out), "--eval-fraction", "0.3", "--seed", "1"]) == 0
    assert "not an official split" in capsys.readouterr().out
    lines = source.read_text(encoding="utf-8").splitlines()
    train, evalp = ((out / n).read_text(encoding="utf-8").splitlines() for n in ("train.jsonl", "eval.jsonl"))
    assert sorted(train + evalp) == sorted(lines) and [x for x in lines if x in train] == train  # rows unchanged, in order
    train_titles = {json.loads(x)["title"] for x in train}
    eval_titles = {json.loads(x)["title"] for x in evalp}
    assert not train_titles & eval_titles and train_titles | eval_titles == set(titles) and len(evalp) == 5
    info = json.loads((out / "split.json").read_text())
    assert info["by"] == "title" and info["seed"] == 1 and info["eval"]["groups"] == sorted(eval_titles)
    first = (out / "eval.jsonl").read_bytes()
    assert main(["split", str(source), "--out", str(out), "--eval-fraction", "0.3", "--seed", "1"]) == 0  # seeded: same split
    assert (out / "eval.jsonl").read_bytes() == first
    assert main(["split", str(out / "train.jsonl"), "--out", str(out)]) == 2  # would overwrite its own source
    assert main(["split", str(source), "--out", str(tmp_path / "s2"), "--by", "nope"]) == 2


# ---- end to end through the CLI ----

@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("qa")
    train = squad_rows(tmp, slice(0, 30), "train.jsonl")
    evalf = squad_rows(tmp, slice(300, 316), "eval.jsonl")
    out = tmp / "scores"
    # Windows of 96 tokens split most contexts into several features; lr 3e-3 lets the tiny model learn
    # "no answer" in some runs, so that H spreads over 0..R.
    common = ["--model", tiny_bert, "--max-length", "96", "--lr", "3e-3", "--batch-size", "4", "--threads", "1", "--quiet"]
    assert main(["score", "--train", str(train), "--eval", str(evalf), "--runs", "2", "--epochs", "1", "--out", str(out), *common]) == 0
    return {"tmp": tmp, "train": train, "eval": evalf, "out": out, "common": common}


def test_score_writes_one_record_per_question(scored):
    scores = pd.read_parquet(scored["out"] / "scores.parquet")
    rows = [json.loads(line) for line in scored["train"].read_text().splitlines()]
    assert scores["example_id"].tolist() == list(range(30))
    assert scores["label"].tolist() == ["unanswerable" if not r["answers"]["text"] else "answerable" for r in rows]
    manifest = json.loads((scored["out"] / "manifest.json").read_text())
    assert manifest["task_type"] == QA and manifest["config"]["max_length"] == 96
    report = manifest["learning_report"]
    assert report["baseline_name"] == "no-answer baseline" and report["majority_baseline"] == pytest.approx(20 / 30, abs=1e-4)
    assert all(len(r["eval_accuracy"]) == 1 for r in report["runs"])
    assert scores["h_score"].isin([1]).sum() > 0  # the winning ticket is not empty


def test_subsets_export_train_compare(scored, capsys):
    out, tmp = scored["out"], scored["tmp"]
    assert main(["subsets", str(out)]) == 0
    assert "unanswerable" in capsys.readouterr().out
    exported = tmp / "wt.jsonl"
    assert main(["export", str(out), "--out", str(exported)]) == 0
    scores = pd.read_parquet(out / "scores.parquet")
    keep = scores["example_id"][scores["h_score"] == 1].to_numpy()
    lines = scored["train"].read_text().splitlines()
    assert exported.read_text().splitlines() == [json.dumps(json.loads(lines[i]), ensure_ascii=False) for i in keep]

    assert main(["train", "--train", str(scored["train"]), "--eval", str(scored["eval"]), "--subset", f"{out}:winning-ticket",
                 "--epochs", "1", "--out", str(tmp / "t"), *scored["common"]]) == 0
    metrics = json.loads((tmp / "t" / "metrics.json").read_text())["metrics"]
    assert metrics["train_size"] == len(keep) and 0 <= metrics["exact"] <= metrics["f1"] <= 1
    assert "exact match" in capsys.readouterr().out

    report = tmp / "compare"
    args = ["compare", str(out), "--eval", str(scored["eval"]), "--subsets", "winning-ticket", "--methods", "hscore,random",
            "--seeds", "1", "--epochs", "1", "--out", str(report), *scored["common"]]
    assert main(args + ["--metric", "accuracy"]) == 2
    assert "--metric accuracy is not measured for extractive-qa data; choose exact or f1" in capsys.readouterr().err
    assert main(args) == 0
    results = pd.read_csv(report / "results.csv")
    assert list(results.columns) == ["task", "method", "subset", "size", "fraction", "seed", "exact", "f1", "train_seconds", "device", "threads", "load"]
    assert results["method"].tolist() == ["full", "hscore", "random"] and results["size"].tolist() == [30, len(keep), len(keep)]
    assert json.loads((report / "compare.json").read_text())["metric"] == "f1"
    assert "## Size–F1 trade-off" in (report / "report.md").read_text()
