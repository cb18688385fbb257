"""`hprune compare`: the cache key, the plan at equal size, and end to end on a slice of real TREC with a
tiny random BERT (scored, compared, repeated from the cache, extended by a seed)."""
import dataclasses
import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import trec_files
from hprune.phase2 import compare as compare_module
from hprune.cli import main
from hprune.phase2.compare import cache_key, phase2_seeds, plan
from hprune.errors import HpruneError
from hprune.engine.models import model_identity, recorded_name
from hprune.scores import random_order
from hprune.subsets import describe_subsets
from hprune.config import TrainConfig

# Every field given: a change of TrainConfig's defaults must not pass for a change of the key.
CONFIG = TrainConfig(epochs=3, lr=1e-4, batch_size=16, grad_accum=1, warmup_ratio=0.06, weight_decay=0.01, max_length=128, bf16=False,
                     length_grouped=True, class_weight="balanced")
BASE = dict(fingerprint="a" * 16, eval_fingerprint="b" * 16, subset="winning-ticket", method="random",
            ids=np.arange(10), seed=1000, model="minilm", config=CONFIG)
# BASE's key as hprune computed it before the test file and the model files stamp entered the key (commit b75c100):
# results cached then must keep being found.
BASE_KEY = "b2bbb0ee9fcd59fe001844513645a9cb357f054803b574e9c71d417e18d31c9f"


def _changed(value):
    if value is None or isinstance(value, str):
        return "balanced" if value is None else None
    return not value if isinstance(value, bool) else value * 2 + 1


CHANGES = {
    "fingerprint": {"fingerprint": "c" * 16}, "eval_fingerprint": {"eval_fingerprint": "c" * 16}, "subset": {"subset": "0126"},
    "method": {"method": "ambiguous"}, "other ids": {"ids": np.arange(1, 11)}, "ids reordered": {"ids": np.arange(10)[::-1]},
    "seed": {"seed": 1001}, "model": {"model": "other"}, "test file": {"test_fingerprint": "d" * 16},
    "rs2 epoch size": {"epoch_size": 5},
    **{f"config.{f.name}": {"config": dataclasses.replace(CONFIG, **{f.name: _changed(getattr(CONFIG, f.name))})}
       for f in dataclasses.fields(TrainConfig)},
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_cache_key_changes_with_every_input(change):
    assert cache_key(**BASE) == cache_key(**{**BASE, "ids": np.arange(10).tolist()})  # stable, whatever the container
    assert cache_key(**{**BASE, **change}) != cache_key(**BASE)


def test_no_test_file_and_no_epoch_size_keep_the_keys_of_results_cached_without_them():
    assert cache_key(**BASE) == BASE_KEY
    assert cache_key(**BASE, test_fingerprint=None, epoch_size=None) == BASE_KEY


def test_a_local_model_is_known_by_its_contents_wherever_it_lies(tmp_path):
    model = tmp_path / "a" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    before = model_identity(str(model))
    assert before.startswith("files:") and model_identity(str(model)) == before  # stable while nothing changes
    os.utime(model / "model.safetensors", ns=(0, 10**18))  # touched: the same contents
    assert model_identity(str(model)) == before
    shutil.copytree(model, tmp_path / "copy")  # moved or shared: the same fine-tunes
    assert model_identity(str(tmp_path / "copy")) == before
    (model / "model.safetensors").write_bytes(b"weightz")  # retrained in place, same size
    assert model_identity(str(model)) != before
    (tmp_path / "m.gguf").write_bytes(b"weights")
    assert model_identity(str(tmp_path / "m.gguf")).startswith("files:")
    assert model_identity("minilm") == "minilm" and model_identity("org/some-hub-model") == "org/some-hub-model"


def test_a_local_model_is_recorded_by_its_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path)
    assert recorded_name("m") == recorded_name("./m") == str(tmp_path / "m")  # one model, found from any directory
    assert recorded_name("minilm") == "minilm" and recorded_name("org/some-hub-model") == "org/some-hub-model"


def test_phase2_seeds_avoid_the_scoring_seeds():
    assert phase2_seeds(3, [0, 1, 2, 3, 4, 5]) == [1000, 1001, 1002]
    assert phase2_seeds(2, [998, 999, 1000]) == [1001, 1002]
    assert phase2_seeds(2, [0], first=7) == [7, 8]


def _scores(n=90):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, n)
    h = rng.choice([0, 2, 3], n)  # nobody at H = 1: subset 023 (which keeps H = 1 only) is empty
    return pd.DataFrame({
        "example_id": np.arange(n), "label": [f"c{k}" for k in labels], "label_id": labels, "h_score": h,
        "confidence": rng.random(n), "variability": rng.random(n), "forgetting": rng.random(n), "el2n": rng.random(n),
        "aum": rng.normal(size=n), "random_order": random_order(n, seed=0),
    })


def test_plan_compares_at_equal_size_and_skips_empty_subsets():
    scores = _scores()
    subsets = describe_subsets(scores, 3)
    jobs, notes = plan(scores, subsets, subset_names=None, methods=["hscore", "random", "el2n"], seeds=[1000, 1001])
    sizes = {s["name"]: s["size"] for s in subsets}
    assert [j.subset for j in jobs[:2]] == ["full", "full"] and all(len(j.ids) == 90 for j in jobs[:2])
    for job in jobs[2:]:
        assert len(job.ids) == len(set(job.ids)) == sizes[job.subset] > 0
    wt = [j for j in jobs if j.subset == "winning-ticket" and j.method == "hscore"][0]
    assert set(wt.ids) == set(scores["example_id"][scores["h_score"].between(1, 2)])
    assert notes == ["subset 023 is empty on this data; skipped"] and not any(j.subset == "023" for j in jobs)
    with pytest.raises(HpruneError, match="unknown method 'nope'"):
        plan(scores, subsets, subset_names=None, methods=["nope"], seeds=[1])


def test_plan_at_budgets_fills_exact_sizes_and_stands_in_the_nearest_automatic_subset():
    scores = _scores()  # 90 examples
    subsets = describe_subsets(scores, 3)
    methods = ["hscore", "hscore-stratified", "ccs", "random", "rs2"]
    jobs, notes = plan(scores, subsets, subset_names=None, methods=methods, seeds=[1000, 1001], fractions=[0.3, 0.5])
    by = {(j.method, j.subset, j.seed): j for j in jobs}
    assert len(by) == len(jobs)
    assert {j.subset for j in jobs if j.method not in ("hscore", "full")} == {"30%", "50%"}
    for label, size in (("30%", 27), ("50%", 45)):
        for seed in (1000, 1001):
            for method in ("hscore-stratified", "ccs", "random"):
                assert len(by[method, label, seed].ids) == size and by[method, label, seed].epoch_size is None
            rs2 = by["rs2", label, seed]
            assert rs2.epoch_size == size and len(rs2.ids) == 90  # drawn from every example, a new subset per epoch
    nearest = {s["name"] for s in subsets if s["size"] > 0}
    hscore = [j for j in jobs if j.method == "hscore"]
    assert hscore and {j.subset for j in hscore} <= nearest
    assert all(len(j.ids) == next(s["size"] for s in subsets if s["name"] == j.subset) for j in hscore)
    assert any("at 30% (27 examples) hscore is the automatic subset" in n for n in notes)
    assert not set(by["hscore-stratified", "30%", 1000].ids) == set(by["hscore-stratified", "30%", 1001].ids)  # a fresh draw per seed
    with_subsets, _ = plan(scores, subsets, subset_names=["winning-ticket"], methods=["rs2"], seeds=[1], fractions=[0.5])
    assert {(j.method, j.subset, j.epoch_size) for j in with_subsets[1:]} == {("rs2", "winning-ticket", subsets[0]["size"]), ("rs2", "50%", 45)}
    without_full, _ = plan(scores, subsets, subset_names=None, methods=["random"], seeds=[1], fractions=[0.5], full_set=False)
    assert [(j.method, j.subset) for j in without_full] == [("random", "50%")]
    with pytest.raises(HpruneError, match=re.escape("--fraction 1.2 is outside (0, 1]")):
        plan(scores, subsets, subset_names=None, methods=["random"], seeds=[1], fractions=[1.2])


@pytest.fixture(scope="module")
def compared(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("compare")
    train, evalf = trec_files(tmp, 120, 50)
    scoring = tmp / "trec"
    # One thread: on a shared 2-core machine, two threads per tiny fine-tune ran 10-50x slower.
    common = ["--model", tiny_bert, "--epochs", "1", "--lr", "1e-3", "--batch-size", "32", "--threads", "1", "--quiet"]
    assert main(["score", "--train", str(train), "--runs", "3", "--out", str(scoring), *common]) == 0
    out = tmp / "report"

    def args(*extra, seeds=2):
        return ["compare", str(scoring), "--eval", str(evalf), "--subsets", "winning-ticket", "--methods", "hscore,random",
                "--seeds", str(seeds), *common, *extra]

    assert main(args("--out", str(out))) == 0
    return {"tmp": tmp, "train": train, "eval": evalf, "scoring": scoring, "out": out, "args": args}


def own_copy(compared, tmp_path):
    """The comparison folder copied for a test that writes into it: the module's folder stays as the fixture made it."""
    out = tmp_path / "report"
    shutil.copytree(compared["out"], out)
    return out


def test_compare_writes_results_at_equal_size(compared):
    out = compared["out"]
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == ["task", "method", "subset", "size", "fraction", "seed", "accuracy", "macro_f1", "mcc", "train_seconds", "device", "threads", "load"]
    assert len(results) == 2 * (1 + 2)  # seeds x (full + one subset x two methods)
    wt_size = json.loads((compared["scoring"] / "subsets.json").read_text())[0]["size"]
    for method, group in results.groupby("method"):
        assert group["size"].tolist() == [120 if method == "full" else wt_size] * 2
        assert group["seed"].tolist() == [1000, 1001]
    assert (results["task"] == "trec").all() and results["accuracy"].between(0, 1).all()
    # each training time with what it depends on: the device, torch's threads, the machine's load
    assert (results["device"] == "cpu").all() and (results["threads"] >= 1).all() and (results["load"] >= 0).all()
    summary = pd.read_csv(out / "summary.csv")
    assert summary[["method", "subset"]].values.tolist() == [["full", "full"], ["hscore", "winning-ticket"], ["random", "winning-ticket"]]
    assert (summary["seeds"] == 2).all()
    assert len(list((out / "cache").glob("*.json"))) == 6
    for name in ("report.md", "report.html", "tradeoff.png", "h_histogram.png", "data_map.png", "compare.json"):
        assert (out / name).stat().st_size > 0


@pytest.mark.slow
def test_parallel_jobs_give_the_same_results(compared, tmp_path, capsys):
    out = tmp_path / "parallel"
    assert main(compared["args"]("--out", str(out), "--jobs", "2")) == 0
    assert "0 cached, 6 to train" in capsys.readouterr().out
    metrics = ["method", "subset", "size", "seed", "accuracy", "macro_f1", "mcc"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv")[metrics], pd.read_csv(compared["out"] / "results.csv")[metrics])


def test_repeating_compare_trains_nothing(compared, tmp_path, monkeypatch, capsys):
    def no_training(*args, **kwargs):
        raise AssertionError("a cached fine-tune was trained again")

    out = own_copy(compared, tmp_path)
    cache = sorted((out / "cache").glob("*.json"))
    before = [p.stat().st_mtime_ns for p in cache]
    monkeypatch.setattr(compare_module, "train_and_evaluate", no_training)
    assert main(compared["args"]("--out", str(out))) == 0
    assert "6 cached, 0 to train" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in cache] == before


def test_a_comparison_copied_with_its_model_trains_nothing(compared, tmp_path, monkeypatch, capsys, tiny_bert):
    def no_training(*args, **kwargs):
        raise AssertionError("a cached fine-tune was trained again")

    out, model = own_copy(compared, tmp_path), tmp_path / "elsewhere" / "model"
    shutil.copytree(tiny_bert, model)  # another machine's path to the same checkpoint
    args = compared["args"]("--out", str(out))
    args[args.index(tiny_bert)] = str(model)
    monkeypatch.setattr(compare_module, "train_and_evaluate", no_training)
    assert main(args) == 0
    assert "6 cached, 0 to train" in capsys.readouterr().out


def test_extending_compare_trains_only_what_is_missing(compared, tmp_path, monkeypatch, capsys):
    calls = []
    real = compare_module.train_and_evaluate
    monkeypatch.setattr(compare_module, "train_and_evaluate", lambda *a, **kw: calls.append(kw["seed"]) or real(*a, **kw))
    out = own_copy(compared, tmp_path)
    assert main(compared["args"]("--out", str(out), seeds=3)) == 0
    assert calls == [1002] * 3 and "6 cached, 3 to train" in capsys.readouterr().out
    assert len(pd.read_csv(out / "results.csv")) == 3 * 3


def test_extending_with_other_subsets_and_methods_keeps_the_earlier_rows(compared, tmp_path, capsys):
    out = own_copy(compared, tmp_path)
    before = pd.read_csv(out / "results.csv")
    other = next(s["name"] for s in json.loads((compared["scoring"] / "subsets.json").read_text())[1:] if s["size"] > 0)
    args = compared["args"]("--out", str(out), seeds=2)
    args[args.index("winning-ticket")], args[args.index("hscore,random")] = other, "hscore"
    assert main(args) == 0
    assert "4 fine-tunes: 2 cached, 2 to train" in capsys.readouterr().out
    results = pd.read_csv(out / "results.csv")
    assert len(results) == len(before) + 2  # the earlier random rows stay; the new subset's hscore rows are added
    key = ["method", "subset", "seed"]
    pd.testing.assert_frame_equal(results[results["subset"] != other].reset_index(drop=True)[key], before[key])
    assert results[results["subset"] == other]["method"].tolist() == ["hscore", "hscore"]
    info = json.loads((out / "compare.json").read_text())
    assert info["subsets"] == ["winning-ticket", other] and info["methods"] == ["hscore", "random"]
    summary = pd.read_csv(out / "summary.csv")
    assert summary[["method", "subset"]].values.tolist() == [["full", "full"], ["hscore", "winning-ticket"],
                                                            ["random", "winning-ticket"], ["hscore", other]]
    # another learning rate is another comparison: its table replaces this one, and the user is told
    assert main(compared["args"]("--out", str(out), "--lr", "2e-3", seeds=1)) == 0
    assert "held a comparison with another config" in capsys.readouterr().out
    assert len(pd.read_csv(out / "results.csv")) == 3


def test_compare_without_the_full_set_keeps_subset_names_as_written(compared, tmp_path):
    out = tmp_path / "no-full"
    subsets = json.loads((compared["scoring"] / "subsets.json").read_text())
    names = [s["name"] for s in subsets if s["size"] and s["name"].isdigit() and s["name"].startswith("0")][:2]
    assert len(names) == 2
    for name in names:  # a results.csv of names such as 023 alone, read back to merge the second: text, not 23
        args = compared["args"]("--out", str(out), "--no-full", seeds=1)
        args[args.index("winning-ticket")], args[args.index("hscore,random")] = name, "hscore"
        assert main(args) == 0
    results = compare_module.read_results(out / "results.csv")
    assert sorted(results["subset"]) == sorted(names) and set(results["method"]) == {"hscore"}


def test_compare_at_a_budget_with_rs2_and_the_stratified_rules(compared, tmp_path):
    out = tmp_path / "budget"
    args = compared["args"]("--out", str(out), "--fractions", "0.5", seeds=1)
    k = args.index("--subsets")
    del args[k:k + 2]
    args[args.index("hscore,random")] = "hscore,hscore-stratified,ccs,rs2"
    assert main(args) == 0
    results = pd.read_csv(out / "results.csv")
    budget = results[results["subset"] == "50%"]
    assert sorted(budget["method"]) == ["ccs", "hscore-stratified", "rs2"] and (budget["size"] == 60).all()
    subsets = json.loads((compared["scoring"] / "subsets.json").read_text())
    hscore = results[results["method"] == "hscore"]
    nearest = min((s for s in subsets if s["size"]), key=lambda s: (abs(s["size"] - 60), -s["size"]))
    assert hscore["subset"].tolist() == [nearest["name"]] and hscore["size"].tolist() == [nearest["size"]]
    cached = [json.loads(p.read_text()) for p in (out / "cache").glob("*.json")]
    assert [c.get("epoch_size") for c in cached if c["method"] == "rs2"] == [60]
    assert "50%" in json.loads((out / "compare.json").read_text())["subsets"]


def test_compare_refuses_a_reordered_training_file(compared):
    lines = compared["train"].read_text().splitlines()
    reordered = compared["tmp"] / "reordered.jsonl"
    reordered.write_text("\n".join(lines[1:] + lines[:1]) + "\n")
    out = compared["tmp"] / "never"
    assert main(compared["args"]("--out", str(out), "--train", str(reordered))) == 2
    assert not (out / "cache").exists()


def test_report_command_regenerates_the_report(compared, tmp_path):
    out = own_copy(compared, tmp_path)
    (out / "report.html").unlink()
    assert main(["report", str(out), "--metric", "mcc"]) == 0
    assert (out / "report.html").is_file()
    assert "## Size–MCC trade-off" in (out / "report.md").read_text()


def test_a_test_file_adds_test_columns_from_the_same_models(compared, tmp_path):
    out = tmp_path / "tested"
    assert main(compared["args"]("--out", str(out), "--test", str(compared["eval"]), seeds=1)) == 0
    results = pd.read_csv(out / "results.csv")
    untested = pd.read_csv(compared["out"] / "results.csv")
    for m in ("accuracy", "macro_f1", "mcc"):  # tested on the evaluation file itself: the same numbers
        assert results[f"test_{m}"].tolist() == results[m].tolist()
        assert results[m].tolist() == untested[untested["seed"] == 1000][m].tolist()  # what compare gave without --test
    assert "test_accuracy_mean" in pd.read_csv(out / "summary.csv").columns
    assert "test accuracy" in (out / "report.md").read_text()


def test_compare_records_its_files_and_verify_checks_them(compared, tmp_path, capsys):
    out = own_copy(compared, tmp_path)
    files = json.loads((out / "compare.json").read_text())["files"]
    assert sorted(files)[-2:] == ["results.csv", "summary.csv"] and sum(k.startswith("cache/") for k in files) == 6
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0
    assert capsys.readouterr().out == f"all 8 files in {out} match their recorded size and sha256\n"
    results = out / "results.csv"
    results.write_text(results.read_text().replace("hscore", "hscorf"))
    assert main(["verify", str(out)]) == 1
    assert capsys.readouterr().out == f"{results} was changed since hprune wrote it (its sha256 differs from the recorded one)\n"


def test_a_bad_cache_entry_is_trained_again_and_a_changed_results_file_refused(compared, tmp_path, monkeypatch, capfd):
    calls = []
    real = compare_module.train_and_evaluate
    monkeypatch.setattr(compare_module, "train_and_evaluate", lambda *a, **kw: calls.append(kw["seed"]) or real(*a, **kw))
    out = own_copy(compared, tmp_path)
    entry = sorted((out / "cache").glob("*.json"))[0]
    entry.write_text(entry.read_text()[:30])
    results = out / "results.csv"
    results.write_text(results.read_text()[:-20])
    capfd.readouterr()
    assert main(["report", str(out)]) == 2
    assert capfd.readouterr().err == (f"error: {results} is truncated or changed ({results.stat().st_size} of {results.stat().st_size + 20} bytes); "
                                      "run the same `hprune compare` command to write it again (its fine-tunes are cached)\n")
    assert main(compared["args"]("--out", str(out))) == 0
    err = capfd.readouterr().err
    assert f"warning: {entry} is truncated or changed" in err and "training that fine-tune again" in err and len(calls) == 1
    timing = ["train_seconds", "load"]  # the retrained fine-tune's own
    pd.testing.assert_frame_equal(pd.read_csv(results).drop(columns=timing), pd.read_csv(compared["out"] / "results.csv").drop(columns=timing))
    assert main(["verify", str(out)]) == 0
