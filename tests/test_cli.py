"""End to end on a slice of real TREC with a tiny random BERT: score -> subsets -> export -> train,
all through the CLI's main()."""
import io
import json
from importlib import metadata
import os
import re

import pandas as pd
import pytest
from tqdm.auto import tqdm

from conftest import trec_files
from hprune.cli import _conditions, main, no_progress_bars
from hprune.config import DEFAULT_SELECTION


@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("e2e")
    train, evalf = trec_files(tmp, 160, 60)
    out = tmp / "scores"
    args = ["score", "--train", str(train), "--eval", str(evalf), "--model", tiny_bert, "--runs", "3", "--epochs", "2",
            "--lr", "1e-3", "--batch-size", "16", "--out", str(out), "--quiet"]
    assert main(args) == 0
    return {"tmp": tmp, "train": train, "eval": evalf, "out": out, "args": args}


def test_score_writes_the_artifacts(scored):
    out = scored["out"]
    scores = pd.read_parquet(out / "scores.parquet")
    assert scores["example_id"].tolist() == list(range(160))
    assert {"example_id", "label", "h_score", "confidence", "variability", "forgetting", "el2n", "aum", "random_order"} <= set(scores.columns)
    assert scores["h_score"].between(0, 3).all()
    original = [json.loads(line)["label"] for line in scored["train"].read_text().splitlines()]
    assert scores["label"].tolist() == original
    subsets = json.loads((out / "subsets.json").read_text())
    assert subsets[0]["name"] == "winning-ticket" and subsets[0]["removed_h"] == [0, 3]
    for s in subsets:
        assert {"name", "removed_h", "size", "fraction", "per_class"} <= set(s)
        assert s["size"] == int((~scores["h_score"].isin(s["removed_h"])).sum())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["runs"] == 3 and manifest["config"]["seeds"] == [0, 1, 2]
    assert len(manifest["fingerprint"]) == 16 and manifest["versions"]["torch"] == metadata.version("torch")
    # each run's time with what it depends on
    assert all(i["device"] == "cpu" and i["threads"] >= 1 and i["load"] >= 0 for i in manifest["runs_info"])
    report = manifest["learning_report"]
    assert len(report["runs"]) == 3 and all(len(r["train_accuracy"]) == 2 and len(r["eval_accuracy"]) == 2 for r in report["runs"])


def test_repeating_score_trains_nothing(scored):
    dyn = sorted((scored["out"] / "dynamics").glob("run-*.npz"))
    before = [p.stat().st_mtime_ns for p in dyn]
    seconds = json.loads((scored["out"] / "manifest.json").read_text())["seconds"]
    assert main(scored["args"]) == 0
    assert [p.stat().st_mtime_ns for p in dyn] == before
    assert not list((scored["out"] / "dynamics").glob("*.ckpt"))
    assert json.loads((scored["out"] / "manifest.json").read_text())["seconds"] == seconds  # the scoring's, not the repeat's


def test_subsets_prints_table_and_report(scored, capsys):
    assert main(["subsets", str(scored["out"])]) == 0
    text = capsys.readouterr().out
    assert "winning-ticket" in text and "majority-class baseline" in text and "DESC" in text


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_export_keeps_rows_and_columns(scored, suffix):
    out_file = scored["tmp"] / f"wt{suffix}"
    assert main(["export", str(scored["out"]), "--subset", "winning-ticket", "--out", str(out_file)]) == 0
    scores = pd.read_parquet(scored["out"] / "scores.parquet")
    keep = scores["example_id"][~scores["h_score"].isin([0, 3])].to_numpy()
    lines = scored["train"].read_text().splitlines()
    if suffix == ".jsonl":
        assert out_file.read_text().splitlines() == [json.dumps(json.loads(lines[i]), ensure_ascii=False) for i in keep]
    else:
        frame = pd.read_csv(out_file) if suffix == ".csv" else pd.read_parquet(out_file)
        assert list(frame.columns) == ["text", "label", "label_fine"]
        assert frame["text"].tolist() == [json.loads(lines[i])["text"] for i in keep]


def test_export_without_an_extension_writes_a_datasets_folder(scored):
    import datasets

    from hprune.data import load_data

    folder, jsonl = scored["tmp"] / "wt-dataset", scored["tmp"] / "wt-rows.jsonl"
    for out in (folder, jsonl):
        assert main(["export", str(scored["out"]), "--subset", "winning-ticket", "--out", str(out)]) == 0
    saved = datasets.load_from_disk(str(folder))
    assert saved.column_names == ["text", "label", "label_fine"]
    assert saved.to_pandas().equals(pd.read_json(jsonl, lines=True, dtype=False))
    assert load_data(str(folder)).fingerprint == load_data(str(jsonl)).fingerprint  # the same rows, scoreable again
    assert main(["export", str(scored["out"]), "--out", str(folder)]) == 2  # never over an existing folder


def test_training_conditions_in_words():
    assert _conditions({"device": "cpu", "threads": 1, "load": None}) == "cpu, 1 thread"  # no load where the OS gives none
    assert _conditions({"device": "NVIDIA H100", "threads": 2, "load": 1.5}) == "NVIDIA H100, 2 threads, load 1.5"


@pytest.mark.slow
def test_train_full_and_subset(scored, capsys):
    for subset in (None, f"{scored['out']}:winning-ticket"):
        out = scored["tmp"] / f"train-{'wt' if subset else 'full'}"
        args = ["train", "--train", str(scored["train"]), "--eval", str(scored["eval"]), "--model", scored["args"][scored["args"].index("--model") + 1],
                "--epochs", "1", "--lr", "1e-3", "--out", str(out), "--quiet"]
        assert main(args + (["--subset", subset] if subset else [])) == 0
        m = json.loads((out / "metrics.json").read_text())
        assert {"accuracy", "macro_f1", "mcc", "train_seconds"} <= set(m["metrics"])
        threads = m["metrics"]["threads"]
        assert f"s (cpu, {threads} thread{'s' * (threads != 1)}, load {m['metrics']['load']}) -> {out / 'metrics.json'}" in capsys.readouterr().out
        wt_size = json.loads((scored["out"] / "subsets.json").read_text())[0]["size"]
        assert m["metrics"]["train_size"] == (wt_size if subset else 160)
        assert 0.0 <= m["metrics"]["accuracy"] <= 1.0


def test_export_refuses_a_reordered_file(scored):
    lines = scored["train"].read_text().splitlines()
    reordered = scored["tmp"] / "reordered.jsonl"
    reordered.write_text("\n".join(lines[1:] + lines[:1]) + "\n")
    out_file = scored["tmp"] / "never.jsonl"
    assert main(["export", str(scored["out"]), "--out", str(out_file), "--train", str(reordered)]) == 2
    assert not out_file.exists()
    assert main(["export", str(scored["out"]), "--out", str(out_file), "--train", str(reordered), "--allow-fingerprint-mismatch"]) == 0


def test_quiet_silences_the_libraries_progress_bars_and_then_restores_them(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    with no_progress_bars():
        assert tqdm(range(3)).disable  # a bar made the way a library makes one, without disable=
        assert os.environ["TQDM_DISABLE"] == "1"  # read by spawned workers when they import tqdm
    assert not tqdm(range(3), file=io.StringIO()).disable and "TQDM_DISABLE" not in os.environ


def test_export_at_a_budget_keeps_exactly_round_f_n_rows(scored, capsys):
    import hprune

    scoring = hprune.load(scored["out"])
    lines = scored["train"].read_text().splitlines()
    for option, method, n in ((["--fraction", "0.3"], DEFAULT_SELECTION, 48), (["--size", "25", "--method", "ccs"], "ccs", 25)):
        out = scored["tmp"] / f"budget-{n}.jsonl"
        assert main(["export", str(scored["out"]), *option, "--out", str(out)]) == 0
        assert f"wrote {n} of 160 rows ({n / 160:.1%}, {method} at {n} rows)" in capsys.readouterr().out
        budget = {"fraction": 0.3} if n == 48 else {"size": 25, "method": "ccs"}
        ids = scoring.ids(**budget)
        assert out.read_text().splitlines() == [json.dumps(json.loads(lines[i]), ensure_ascii=False) for i in ids]
        assert scoring.mask(**budget).sum() == n and len(scoring.select(str(scored["train"]), **budget)) == n


def test_train_at_a_budget(scored):
    out = scored["tmp"] / "train-budget"
    model = scored["args"][scored["args"].index("--model") + 1]
    assert main(["train", "--train", str(scored["train"]), "--eval", str(scored["eval"]), "--subset", str(scored["out"]), "--size", "40",
                 "--method", "random", "--model", model, "--epochs", "1", "--threads", "1", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metrics"]["train_size"] == 40 and metrics["subset"] == "random at 40 rows"


def test_the_help_names_every_method_and_the_default_ones():
    from hprune.cli import BUDGET_METHODS_HELP, build_parser
    from hprune.phase2.compare import DEFAULT_METHODS, METHODS
    from hprune.subsets import BUDGET_METHODS

    assert all(re.search(rf"\b{m}\b", BUDGET_METHODS_HELP) for m in BUDGET_METHODS)
    compare = build_parser()._subparsers._group_actions[0].choices["compare"]
    methods_help = next(a.help for a in compare._actions if a.dest == "methods")
    assert ",".join(DEFAULT_METHODS) in methods_help and all(m in methods_help for m in METHODS)
