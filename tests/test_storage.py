"""Storage faults and interruptions (issue 23): files that went bad after hprune wrote them, a disk that
refuses a write, a folder removed under a running job, SIGTERM and SIGINT, a killed worker. Each ends in
one line and a set exit status, leaves no temporary file, and the same command then resumes to scores
equal, value for value, to an uninterrupted run's."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import head_rows
from hprune.cli import main
from test_resume import _assert_same_scores, _command, _epochs_done, _start, _temp_files, _wait_for

RUNS = 3
INTERRUPTED = "interrupted: run the same command to resume\n"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_bert):
    """An uninterrupted scoring of 120 TREC rows, the one every resumed scoring must equal."""
    tmp = tmp_path_factory.mktemp("reference")
    train = head_rows("trec", "train", 120, tmp / "train.jsonl")
    assert main(_command(train, tiny_bert, tmp / "scores")) == 0
    return tmp


def _finish(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hprune", *args], capture_output=True, text=True, timeout=600)


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    rc = proc.wait(timeout=120)
    err = proc.stderr.read()
    proc.stderr.close()
    return rc, err


# ---- checksums, verify, self-healing


def test_the_manifest_records_every_file_and_verify_checks_them(tmp_path, reference, capfd):
    out = tmp_path / "scores"
    shutil.copytree(reference / "scores", out)
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert sorted(files) == ["dynamics/run-0.json", "dynamics/run-0.npz", "dynamics/run-1.json", "dynamics/run-1.npz",
                             "dynamics/run-2.json", "dynamics/run-2.npz", "scores.parquet", "subsets.json"]
    capfd.readouterr()
    assert main(["verify", str(out)]) == 0
    assert capfd.readouterr().out == f"all 8 files in {out} match their recorded size and sha256\n"

    npz = out / "dynamics" / "run-1.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    subsets = out / "subsets.json"
    subsets.write_text(subsets.read_text().replace("winning-ticket", "winning-tickex"))
    (out / "dynamics" / "run-2.json").unlink()
    assert main(["verify", str(out)]) == 1
    assert sorted(capfd.readouterr().out.splitlines()) == sorted([
        f"{npz} is truncated or changed (100 of {files['dynamics/run-1.npz']['size']} bytes)",
        f"{out / 'dynamics' / 'run-2.json'} is missing",
        f"{subsets} was changed since hprune wrote it (its sha256 differs from the recorded one)",
    ])


@pytest.mark.parametrize("spoil", ["truncated", "changed", "missing", "garbage"])
def test_a_bad_run_file_is_trained_again_to_the_same_scores(spoil, tmp_path, reference, tiny_bert, capfd):
    out = tmp_path / "scores"
    shutil.copytree(reference / "scores", out)
    npz = out / "dynamics" / "run-1.npz"
    data = npz.read_bytes()
    if spoil == "truncated":
        npz.write_bytes(data[: len(data) // 2])
    elif spoil == "changed":  # a byte flipped in the middle: the zip is still readable only by luck
        middle = len(data) // 2
        npz.write_bytes(data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1:])
    elif spoil == "missing":
        npz.unlink()
    else:
        (out / "dynamics" / "run-1.json").write_text("{oops")
    capfd.readouterr()
    assert main(_command(reference / "train.jsonl", tiny_bert, out)) == 0
    err = [line for line in capfd.readouterr().err.splitlines() if "run 2 again" in line]
    assert len(err) == 1 and err[0].startswith(f"warning: {out / 'dynamics'}/run-1.") and err[0].endswith("; training run 2 again")
    _assert_same_scores(out, reference / "scores", runs=RUNS)
    assert main(["verify", str(out)]) == 0


def test_an_unreadable_checkpoint_is_trained_again(tmp_path, reference, tiny_bert):
    out = tmp_path / "scores"
    args = _command(reference / "train.jsonl", tiny_bert, out)
    proc = _start(args)
    _wait_for(proc, lambda: (out / "dynamics" / "run-0.ckpt").exists(), "run 0 has a checkpoint")
    proc.send_signal(signal.SIGTERM)
    assert _stop(proc) == (143, INTERRUPTED)
    ckpt = out / "dynamics" / "run-0.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    done = _finish(args)
    assert done.returncode == 0, done.stderr
    assert f"warning: {ckpt} is unreadable" in done.stderr and "training run 1 again from its first epoch" in done.stderr
    _assert_same_scores(out, reference / "scores", runs=RUNS)


def test_a_changed_scores_file_is_refused_not_replaced(tmp_path, reference, tiny_bert, capfd):
    out = tmp_path / "scores"
    shutil.copytree(reference / "scores", out)
    scores = pd.read_parquet(out / "scores.parquet")
    scores.assign(h_score=scores["h_score"].iloc[::-1].to_numpy()).to_parquet(out / "scores.parquet", index=False)
    changed = (out / "scores.parquet").read_bytes()
    capfd.readouterr()
    assert main(_command(reference / "train.jsonl", tiny_bert, out)) == 2
    err = capfd.readouterr().err
    assert err == (f"error: {out / 'scores.parquet'} was changed since hprune wrote it (its sha256 differs from the recorded one); "
                   "delete it and run the same `hprune score` command to write it again from the recorded runs, or score again "
                   "with a new --out\n")
    assert (out / "scores.parquet").read_bytes() == changed
    (out / "scores.parquet").unlink()  # the fix the line gives
    assert main(_command(reference / "train.jsonl", tiny_bert, out)) == 0
    _assert_same_scores(out, reference / "scores", runs=RUNS)


# ---- the disk says no


def _root_and_mount() -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs: room for the manifest and the dynamics, not for the tiny model's 12 MB checkpoint."""
    _root_and_mount()
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def _remount(disk: Path, options: str) -> None:
    """Retried: a read-only remount waits until no file is open for writing there (between two writes)."""
    deadline = time.monotonic() + 60
    while subprocess.run(["mount", "-o", f"remount,{options}", str(disk)], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, f"could not remount {disk} {options}"
        time.sleep(0.01)


def test_a_full_disk_is_one_line_and_the_folder_resumes(small_disk, reference, tiny_bert):
    out = small_disk / "scores"
    args = _command(reference / "train.jsonl", tiny_bert, out)
    full = _finish(args)
    assert full.returncode == 2
    assert full.stderr == (f"error: could not write {out / 'dynamics' / 'run-0.ckpt'} (no space left on the device); "
                           "free space or choose another --out\n")
    assert not _temp_files(out) and not (out / "scores.parquet").exists()
    _remount(small_disk, "size=64m")  # the cause is gone
    done = _finish(args)
    assert done.returncode == 0, done.stderr
    _assert_same_scores(out, reference / "scores", runs=RUNS)


def test_a_disk_turned_read_only_under_a_running_job(tmp_path, reference, tiny_bert):
    """dynamics/ on its own tmpfs, made read-only after the first epoch (the folder itself holds the open lock)."""
    _root_and_mount()
    out = tmp_path / "scores"
    dynamics = out / "dynamics"
    dynamics.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(dynamics)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        args = _command(reference / "train.jsonl", tiny_bert, out)
        proc = _start(args)
        _wait_for(proc, lambda: _epochs_done(out, 0) >= 1, "run 0 has one epoch")
        _remount(dynamics, "ro")
        rc, err = _stop(proc)
        assert rc == 2 and err.startswith(f"error: could not write {dynamics}/run-0.") and err.endswith(
            " (read-only file system); choose another --out\n") and err.count("\n") == 1, err
        _remount(dynamics, "rw")
        done = _finish(args)
        assert done.returncode == 0, done.stderr
        _assert_same_scores(out, reference / "scores", runs=RUNS)
    finally:
        subprocess.run(["umount", "-l", str(dynamics)], check=True)


def test_a_folder_removed_under_a_running_job(tmp_path, reference, tiny_bert):
    out = tmp_path / "scores"
    args = _command(reference / "train.jsonl", tiny_bert, out)
    proc = _start(args)
    _wait_for(proc, lambda: _epochs_done(out, 0) >= 1, "run 0 has one epoch")
    while out.exists():  # the job may write a file into it meanwhile
        shutil.rmtree(out, ignore_errors=True)
    rc, err = _stop(proc)
    assert rc == 2 and err.startswith(f"error: could not write {out / 'dynamics'}/run-0.") and err.endswith(
        " (its folder was removed); run the same command again, or choose another --out\n") and err.count("\n") == 1, err
    assert not out.exists()
    done = _finish(args)
    assert done.returncode == 0, done.stderr
    _assert_same_scores(out, reference / "scores", runs=RUNS)


def test_storage_errors_name_the_reason_and_the_fix(tmp_path):
    import errno

    from hprune.io import storage_error

    path = tmp_path / "scores.parquet"
    for code, words in [(errno.ENOSPC, "(no space left on the device); free space or choose another --out"),
                        (errno.EACCES, "(permission denied); make the folder writable or choose another --out"),
                        (errno.EROFS, "(read-only file system); choose another --out"),
                        (errno.EIO, "(Input/output error); check the disk, or choose another --out")]:
        assert str(storage_error(path, OSError(code, os.strerror(code)))) == f"could not write {path} {words}"


# ---- signals and killed workers


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_at_a_safe_point_and_the_scoring_resumes(sig, status, tmp_path, reference, tiny_bert):
    out = tmp_path / "scores"
    args = _command(reference / "train.jsonl", tiny_bert, out)
    for condition in (lambda: _epochs_done(out, 0) >= 1, lambda: _epochs_done(out, 1) >= 2):
        proc = _start(args)
        _wait_for(proc, condition, "an epoch end")
        epochs = [_epochs_done(out, r) for r in range(RUNS)]
        proc.send_signal(sig)
        assert _stop(proc) == (status, INTERRUPTED)
        assert [_epochs_done(out, r) for r in range(RUNS)] == epochs  # stopped inside the epoch it was in, not at the run's end
        assert not _temp_files(out) and not (out / "scores.parquet").exists()
    done = _finish(args)
    assert done.returncode == 0, done.stderr
    _assert_same_scores(out, reference / "scores", runs=RUNS)


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["worker", "driver"])
def test_jobs_a_killed_worker_or_a_stopped_driver_is_one_line(kill, tmp_path, reference, tiny_bert):
    out = tmp_path / "scores"
    args = [*_command(reference / "train.jsonl", tiny_bert, out), "--jobs", "2"]
    proc = _start(args)
    _wait_for(proc, lambda: _epochs_done(out, 0) >= 1 or _epochs_done(out, 1) >= 1, "a worker's first epoch")
    workers = [pid for pid in _children(proc.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == 2
    if kill == "worker":
        os.kill(workers[0], signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGTERM)
    assert _stop(proc) == (143, INTERRUPTED)
    time.sleep(1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert not _temp_files(out)
    done = _finish(args)
    assert done.returncode == 0, done.stderr
    _assert_same_scores(out, reference / "scores", runs=RUNS)


@pytest.mark.slow
def test_torchrun_a_killed_rank_is_one_line_from_the_other(tmp_path, tiny_bert):
    """The surviving rank says `interrupted` instead of gloo's traceback (torchrun's own failure report follows;
    it is torch's launcher, not hprune), and the same command resumes."""
    from conftest import torchrun_score

    train = head_rows("trec", "train", 240, tmp_path / "train.jsonl")
    out = tmp_path / "scores"
    cmd, env = torchrun_score(train, tiny_bert, out, runs=2, epochs=3)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(proc, lambda: (out / "dynamics" / "run-0.ckpt").exists(), "run 0 has a checkpoint")
    ranks = sorted(int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _is_rank(d, out))
    assert len(ranks) == 2
    os.kill(ranks[1], signal.SIGKILL)
    rc, err = _stop(proc)
    assert rc != 0 and INTERRUPTED in err and "[rank0]: Traceback" not in err and "gloo" not in err, err[-3000:]
    cmd, env = torchrun_score(train, tiny_bert, out, runs=2, epochs=3)
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode == 0
    assert not _temp_files(out) and (out / "scores.parquet").exists()


def _is_rank(proc_dir: Path, out: Path) -> bool:
    cmdline = _cmdline(proc_dir)
    return str(out) in cmdline and "torch.distributed.run" not in cmdline


@pytest.mark.slow
def test_ray_a_killed_worker_is_one_line(tmp_path, tiny_bert):
    pytest.importorskip("ray")
    out = tmp_path / "scores"
    args = [*_command(head_rows("trec", "train", 120, tmp_path / "train.jsonl"), tiny_bert, out, runs=2),
            "--executor", "ray", "--cpus-per-run", "1"]
    proc = _start(args)
    _wait_for(proc, lambda: _epochs_done(out, 0) >= 1 or _epochs_done(out, 1) >= 1, "a Ray worker's first epoch", timeout=600)
    workers = [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _cmdline(d).startswith("ray::score_run")]
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    rc, err = _stop(proc)
    assert rc == 143 and err.endswith(INTERRUPTED) and "Traceback" not in err, err


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_a_signal_during_a_write_stops_after_it(tmp_path):
    """A stop that comes while a file is written waits for the write: the file is whole, no temporary is left."""
    from hprune.errors import Interrupted
    from hprune.io import atomic_file, stop_at_safe_point

    path = tmp_path / "run-0.ckpt"
    with pytest.raises(Interrupted):
        with atomic_file(path) as f:
            f.write(b"half")
            stop_at_safe_point(Interrupted(143))  # what the CLI's handler does on SIGTERM
            f.write(b" and half")
    assert path.read_bytes() == b"half and half" and not _temp_files(tmp_path)
    with pytest.raises(Interrupted):
        stop_at_safe_point(Interrupted(130))  # between writes: at once
