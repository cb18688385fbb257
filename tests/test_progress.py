"""Progress where stderr is not a terminal (a log file, CI, nohup): plain lines, no carriage-return frames;
a scoring shows the whole job's progress (runs x epochs) and says what it does while it loads."""
import os
import subprocess
import sys

from conftest import trec_files


def test_a_scoring_logged_to_a_file_writes_plain_lines_with_the_whole_jobs_progress(tmp_path, tiny_bert):
    train, evalf = trec_files(tmp_path, 40, 20)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "hprune", "score", "--train", str(train), "--eval", str(evalf), "--model", tiny_bert,
                           "--runs", "2", "--epochs", "2", "--batch-size", "8", "--threads", "1", "--out", str(tmp_path / "s")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    assert "loading model" in done.stdout and "tokenizing 40 training and 20 evaluation examples" in done.stdout
    job = [line for line in done.stderr.splitlines() if line.startswith("scoring")]
    assert job and "20/20" in job[-1] and "step" in job[-1]  # 2 runs x 2 epochs x 5 batches of 8
    epochs = [line for line in done.stderr.splitlines() if line.startswith("run ")]
    assert any("run 2/2 epoch 2/2" in line and "5/5" in line for line in epochs)
    assert len(done.stderr.splitlines()) < 40  # a line per bar now and then, not a frame per step
