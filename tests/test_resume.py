"""Resume after a hard kill. `hprune score` runs as a real process and is SIGKILLed at seeded random
moments (very early, mid-run, between runs); repeating the command must give scores equal, value for
value, to an uninterrupted run's. After every kill no file is torn and no final score exists yet.
A second `hprune score` on a folder in use is refused."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import head_rows, torchrun_score
from hprune.cli import main
from hprune.dynamics.store import FIELDS, RunDynamics

RUNS, EPOCHS = 3, 3


def _command(train: Path, model: str, out: Path, runs: int = RUNS) -> list[str]:
    return ["score", "--train", str(train), "--model", model, "--runs", str(runs), "--epochs", str(EPOCHS),
            "--batch-size", "4", "--lr", "1e-3", "--threads", "1", "--out", str(out), "--quiet"]


def _start(args: list[str]) -> subprocess.Popen:
    # Ctrl-C's default action, as in a terminal, even when the tests themselves run as a background job (SIGINT ignored)
    return subprocess.Popen([sys.executable, "-m", "hprune", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _epochs_done(out: Path, run: int) -> int:
    """Epochs of `run` on disk (run-K.json is written first at each epoch end, atomically)."""
    path = out / "dynamics" / f"run-{run}.json"
    return len(json.loads(path.read_text())["train_loss"]) if path.exists() else 0


def _wait_for(proc: subprocess.Popen, condition, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"hprune score ended (rc {proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def _assert_nothing_torn(out: Path) -> None:
    """Every file a killed process left is whole, and the final scores are not there yet."""
    assert not (out / "scores.parquet").exists() and not (out / "subsets.json").exists()
    if (out / "manifest.json").exists():
        assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    for path in sorted((out / "dynamics").glob("run-*")) if (out / "dynamics").exists() else []:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            assert 1 <= RunDynamics.load(path).epochs_done <= EPOCHS
        else:
            assert path.suffix == ".ckpt" and torch.load(path, weights_only=False)["epoch"] < EPOCHS - 1


def _temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if ".tmp" in p.name]


def _assert_same_scores(got: Path, want: Path, *, runs: int) -> None:
    """Scores and every run's dynamics equal, value for value."""
    pd.testing.assert_frame_equal(pd.read_parquet(got / "scores.parquet"), pd.read_parquet(want / "scores.parquet"), check_exact=True)
    for r in range(runs):
        a, b = RunDynamics.load(got / "dynamics" / f"run-{r}.npz"), RunDynamics.load(want / "dynamics" / f"run-{r}.npz")
        for field in FIELDS:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=f"run {r} {field}")


@pytest.mark.slow
def test_killed_score_resumes_to_identical_scores(tmp_path, tiny_bert):
    train = head_rows("trec", "train", 120, tmp_path / "train.jsonl")
    reference = _start(_command(train, tiny_bert, tmp_path / "uninterrupted"))  # alongside: one thread each
    out = tmp_path / "interrupted"
    args = _command(train, tiny_bert, out)
    rng = random.Random(20240711)
    # (what must be on disk before the kill can come, seconds to wait after that: a seeded random delay)
    kill_points = [
        ("nothing (very early)", lambda: True, rng.uniform(0.05, 1.0)),
        ("run 0 has one epoch", lambda: _epochs_done(out, 0) >= 1, rng.uniform(0.0, 0.6)),
        ("run 1 is finished (between runs)", lambda: _epochs_done(out, 1) == EPOCHS, 0.0),
        # at once: most likely after that epoch's dynamics and before its checkpoint
        ("run 2 has two epochs", lambda: _epochs_done(out, 2) >= 2, 0.0),
    ]
    for what, condition, delay in kill_points:
        proc = _start(args)
        _wait_for(proc, condition, what)
        time.sleep(delay)
        assert proc.poll() is None, f"hprune score finished before the kill after {what}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        _assert_nothing_torn(out)

    final = subprocess.run([sys.executable, "-m", "hprune", *args], capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    reference.stderr.close()

    want, got = tmp_path / "uninterrupted", out
    _assert_same_scores(got, want, runs=RUNS)
    assert json.loads((got / "subsets.json").read_text()) == json.loads((want / "subsets.json").read_text())
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (got, want)]
    assert manifests[0]["learning_report"] == manifests[1]["learning_report"]
    assert manifests[0]["status"] == "complete"
    assert not list(got.rglob("*.ckpt")) and not _temp_files(got)


@pytest.mark.slow
def test_killed_ddp_score_resumes_to_identical_scores(tmp_path, tiny_bert):
    """Under DDP the checkpoint holds every rank's RNG state; a resumed run must draw the dropout masks the
    uninterrupted one drew, on every rank."""
    train = head_rows("trec", "train", 240, tmp_path / "train.jsonl")
    out = tmp_path / "interrupted"
    cmd, env = torchrun_score(train, tiny_bert, out, runs=2, epochs=EPOCHS)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(proc, lambda: (out / "dynamics" / "run-0.ckpt").exists(), "run 0 has a checkpoint")  # written atomically
    assert proc.poll() is None, "hprune score finished before the kill"
    # the launcher and both ranks (torchrun starts its workers in sessions of their own, so not killpg)
    for pid in [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()]:
        try:
            if str(out) in (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass  # gone meanwhile
    proc.wait()
    proc.stderr.close()
    _assert_nothing_torn(out)
    for name in ("uninterrupted", "interrupted"):  # the interrupted one resumes (a fresh port: the old may linger)
        cmd, env = torchrun_score(train, tiny_bert, tmp_path / name, runs=2, epochs=EPOCHS)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    want, got = tmp_path / "uninterrupted", out
    _assert_same_scores(got, want, runs=2)


def test_a_second_score_on_a_busy_folder_is_refused(tmp_path, tiny_bert, capfd):
    train = head_rows("trec", "train", 120, tmp_path / "train.jsonl")
    out = tmp_path / "scores"
    args = _command(train, tiny_bert, out)
    first = _start(args)
    try:
        _wait_for(first, lambda: (out / "manifest.json").exists(), "the manifest")  # written under the lock
        capfd.readouterr()
        assert main(args) == 2
        err = capfd.readouterr().err
        assert err == f"error: another hprune score is running on {out}; wait for it or use another --out\n"
        assert first.poll() is None  # the first one goes on
        assert not (out / "scores.parquet").exists()
    finally:
        first.kill()
        first.wait()
        first.stderr.close()


def test_the_temporary_files_of_killed_writes_are_cleared(tmp_path):
    """What atomic_path leaves when its process dies mid-write is found and removed; nothing else is."""
    from hprune.io import atomic_path, remove_stale_temps

    (tmp_path / "dynamics").mkdir()
    keep = [tmp_path / ".lock", tmp_path / "manifest.json", tmp_path / ".notes.tmp", tmp_path / "dynamics" / "run-0.npz"]
    for path in keep:
        path.write_text("whole")
    writes, stale = [], []
    for target in ["scores.parquet", "manifest.json", ".write-test", "dynamics/run-0.ckpt", "dynamics/run-0.npz"]:
        writes.append(atomic_path(tmp_path / target))  # held, never exited: killed mid-write
        stale.append(writes[-1].__enter__())
        stale[-1].write_bytes(b"half")
    assert sorted(remove_stale_temps(tmp_path)) == sorted(stale)
    assert all(p.read_text() == "whole" for p in keep) and not any(p.exists() for p in stale)
