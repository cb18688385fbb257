"""`--executor ray` and `--jobs`: the runs as Ray tasks or as worker processes give the same files as
in-process (same seeds, same threads, deterministic CPU), and a missing Ray is one clear error line."""
import builtins
import json

import numpy as np
import pandas as pd
import pytest

from conftest import head_rows
from hprune.cli import main


def _score(tmp_path, tiny_bert, name, *extra):
    train = head_rows("trec", "train", 80, tmp_path / "train.jsonl")
    out = tmp_path / name
    args = ["score", "--train", str(train), "--model", tiny_bert, "--runs", "2", "--epochs", "2", "--lr", "1e-3",
            "--batch-size", "16", "--threads", "1", "--out", str(out), "--quiet", *extra]
    assert main(args) == 0
    return out


def _assert_same_scoring(got, want, executor="ray"):
    pd.testing.assert_frame_equal(pd.read_parquet(got / "scores.parquet"), pd.read_parquet(want / "scores.parquet"))
    for r in range(2):
        a, b = np.load(want / "dynamics" / f"run-{r}.npz"), np.load(got / "dynamics" / f"run-{r}.npz")
        for k in ("correct", "probs", "margins", "el2n", "epochs_done"):
            np.testing.assert_array_equal(a[k], b[k])
    assert json.loads((got / "subsets.json").read_text()) == json.loads((want / "subsets.json").read_text())
    manifest = json.loads((got / "manifest.json").read_text())
    assert manifest["executor"] == executor and manifest["status"] == "complete"
    assert main(["subsets", str(got)]) == 0


@pytest.mark.slow
def test_ray_gives_the_in_process_scores(tmp_path, tiny_bert):
    ray = pytest.importorskip("ray")
    local = _score(tmp_path, tiny_bert, "local")
    # --threads 1: each Ray task takes 1 CPU and 1 torch thread, as in-process. hprune starts a local Ray
    # with this machine's cores (2 here): both runs at once; the workers write OUT/dynamics themselves.
    _assert_same_scoring(_score(tmp_path, tiny_bert, "ray", "--executor", "ray"), local)
    # Given an address (here the Ray this process already joined, with 2 CPUs), the workers return the
    # arrays and the driver writes each run's files, as for a cluster whose nodes do not share the disk.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _assert_same_scoring(_score(tmp_path, tiny_bert, "cluster", "--executor", "ray", "--ray-address", "auto"), local)
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_worker_processes_give_the_in_process_scores(tmp_path, tiny_bert):
    local = _score(tmp_path, tiny_bert, "local")
    jobs = _score(tmp_path, tiny_bert, "jobs", "--jobs", "2")
    _assert_same_scoring(jobs, local, executor="local")
    assert json.loads((jobs / "manifest.json").read_text())["jobs"] == 2


def test_jobs_with_ray_is_one_clear_line(tmp_path, tiny_bert, capsys):
    train = head_rows("trec", "train", 20, tmp_path / "train.jsonl")
    assert main(["score", "--train", str(train), "--model", tiny_bert, "--out", str(tmp_path / "out"), "--jobs", "2", "--executor", "ray", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --jobs") and not (tmp_path / "out").exists()


def test_missing_ray_is_one_clear_line(tmp_path, tiny_bert, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    train = head_rows("trec", "train", 20, tmp_path / "train.jsonl")
    code = main(["score", "--train", str(train), "--model", tiny_bert, "--runs", "2", "--epochs", "1", "--out", str(tmp_path / "x"),
                 "--quiet", "--executor", "ray"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --executor ray needs Ray, which is not installed: pip install 'hprune[ray]'"]


def test_ray_options_need_the_ray_executor(tmp_path, tiny_bert, capsys):
    train = head_rows("trec", "train", 20, tmp_path / "train.jsonl")
    code = main(["score", "--train", str(train), "--model", tiny_bert, "--runs", "2", "--out", str(tmp_path / "x"), "--ray-address", "auto"])
    assert code == 2 and "--executor ray" in capsys.readouterr().err


def test_epoch_progress_reports_each_finished_epoch_once(tmp_path):
    from hprune.phase1.executors import epoch_progress
    from hprune.io import write_json

    (tmp_path / "dynamics").mkdir()
    seen = {}
    assert epoch_progress(tmp_path, [0, 1], 2, 3, seen) == []  # nothing written yet
    write_json(tmp_path / "dynamics" / "run-1.json", {"train_loss": [0.5], "eval_accuracy": [0.8], "train_seconds": 12.0})
    assert epoch_progress(tmp_path, [0, 1], 2, 3, seen) == ["run 2/2: epoch 1/3 done, train loss 0.5000, eval accuracy 0.8000 (12 s training)"]
    assert epoch_progress(tmp_path, [0, 1], 2, 3, seen) == []  # said once
    write_json(tmp_path / "dynamics" / "run-1.json", {"train_loss": [0.5, 0.25], "eval_accuracy": [], "train_seconds": 20.0})
    assert epoch_progress(tmp_path, [0, 1], 2, 3, seen) == ["run 2/2: epoch 2/3 done, train loss 0.2500 (20 s training)"]


def test_busy_machine_warning_only_when_ray_would_share_cores():
    from hprune.phase1.executors import busy_machine_warning

    assert busy_machine_warning(0.1, 2, 6) is None  # an idle machine
    assert busy_machine_warning(1.0, 4, 2) is None  # busy, but the runs fit on the free cores
    warning = busy_machine_warning(1.2, 2, 6)
    assert "1.2 of 2 cores in use" in warning and "--executor local" in warning
