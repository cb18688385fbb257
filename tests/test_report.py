"""The comparison report from hand-built results and scores (no training): the summary's numbers, the
files, that report.html needs nothing beside it, and that it renders in headless Chromium."""
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from hprune.cli import main
from hprune.phase2.compare import COMPARE_FILE, RESULTS_FILE, report
from hprune.io import write_json
from hprune.reports import against_random_table, format_summary, summarize, versus_random
from hprune.scores import random_order
from hprune.artifacts import MANIFEST_FILE, SCORES_FILE, SUBSETS_FILE
from hprune.subsets import describe_subsets
from hprune.config import TrainConfig

N, RUNS = 300, 6


def _results() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [("full", "full", N)] + [(m, s, size) for s, size in (("winning-ticket", 110), ("0126", 60), ("012346", 20))
                                     for m in ("hscore", "random", "el2n")]
    return pd.DataFrame([
        {"task": "trec", "method": m, "subset": s, "size": size, "fraction": size / N, "seed": seed,
         "accuracy": acc, "macro_f1": acc - 0.05, "mcc": acc - 0.2, "train_seconds": size / 50}
        for m, s, size in rows for seed, acc in zip((1000, 1001, 1002), 0.6 + 0.3 * size / N + rng.normal(0, 0.02, 3))
    ])


@pytest.fixture
def compared(tmp_path):
    """A scoring folder and a comparison folder as `hprune score` and `hprune compare` leave them."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, N)
    h = rng.integers(0, RUNS + 1, N)
    scores = pd.DataFrame({
        "example_id": np.arange(N), "label": [f"class-{k}" for k in labels], "label_id": labels, "h_score": h,
        "confidence": np.clip(h / RUNS + rng.normal(0, 0.1, N), 0, 1), "variability": rng.random(N) * 0.4,
        "forgetting": rng.random(N), "el2n": rng.random(N), "aum": rng.normal(size=N), "random_order": random_order(N, seed=0),
    })
    scoring = tmp_path / "scoring"
    scoring.mkdir()
    scores.to_parquet(scoring / SCORES_FILE)
    write_json(scoring / SUBSETS_FILE, describe_subsets(scores, RUNS))
    write_json(scoring / MANIFEST_FILE, {
        "status": "complete", "fingerprint": "f" * 16, "config": {"model": "minilm", "runs": RUNS, "epochs": 3, "seeds": list(range(RUNS))},
        "learning_report": {"majority_baseline": 0.25, "learned_threshold": 0.44,
                            "runs": [{"run": r, "seed": r, "train_accuracy": [0.5, 0.8, 0.9], "eval_accuracy": [0.6, 0.7, 0.75]} for r in range(RUNS)]},
        "warnings": ["a warning to show"],
    })
    out = tmp_path / "report"
    out.mkdir()
    _results().to_csv(out / RESULTS_FILE, index=False)
    write_json(out / COMPARE_FILE, {
        "task": "trec", "scoring_dir": str(scoring), "train_source": "train.jsonl", "eval_source": "test.jsonl",
        "fingerprint": "f" * 16, "eval_fingerprint": "e" * 16, "model": "minilm", "config": TrainConfig().to_dict(),
        "seeds": [1000, 1001, 1002], "methods": ["hscore", "random", "el2n"], "subsets": ["winning-ticket", "0126", "012346"],
        "class_balanced": False, "metric": "accuracy",
    })
    return out


def test_summary_is_mean_and_std_over_seeds():
    results = _results()
    summary = summarize(results)
    assert len(summary) == 10 and (summary["seeds"] == 3).all()
    row = summary[(summary["method"] == "random") & (summary["subset"] == "0126")].iloc[0]
    accs = results[(results["method"] == "random") & (results["subset"] == "0126")]["accuracy"]
    assert row["accuracy_mean"] == pytest.approx(accs.mean()) and row["accuracy_std"] == pytest.approx(accs.std(ddof=1))
    assert row["size"] == 60 and row["fraction"] == pytest.approx(0.2)
    text = format_summary(summary, "accuracy")
    assert text.startswith("full training set (300 examples): accuracy ") and "winning-ticket" in text and " ± " in text


def test_every_method_is_judged_against_random_at_its_size():
    assert [versus_random(g, 0.01) for g in (0.02, 0.01, -0.005, -0.011)] == ["above", "within", "within", "below"]
    assert versus_random(0.5, float("nan")) == "one seed"  # random ran with one seed: no spread to judge by
    summary = summarize(_results())
    table = against_random_table(summary, "accuracy")
    assert table.columns.tolist() == ["subset", "size", "hscore", "el2n"] and table["subset"].tolist() == ["winning-ticket", "0126", "012346"]
    mean = summary.set_index(["method", "subset"])
    gap = mean.loc[("el2n", "0126"), "accuracy_mean"] - mean.loc[("random", "0126"), "accuracy_mean"]
    assert table.set_index("subset").loc["0126", "el2n"] == f"{gap:+.3f} ({versus_random(gap, mean.loc[('random', '0126'), 'accuracy_std'])})"
    assert "against random at equal size" in format_summary(summary, "accuracy")
    without_random = summary[summary["method"] != "random"]
    assert against_random_table(without_random, "accuracy").empty
    assert "against random" not in format_summary(without_random, "accuracy")


def test_report_files_are_complete_and_self_contained(compared):
    html_path = report(compared)
    pngs = {"tradeoff.png", "h_histogram.png", "data_map.png"}
    for name in pngs:
        assert (compared / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = html_path.read_text()
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(href|src)="(?!data:)', html) and "<link" not in html
    md = (compared / "report.md").read_text()
    assert set(re.findall(r"\]\(([^)]+)\)", md)) == pngs
    for text in ("## Size–accuracy trade-off", "| winning-ticket | 110 |", "class-3", "Learning report", "a warning to show",
                 "## Against random at equal size (accuracy)"):
        assert text in md


def test_report_command_takes_another_metric_and_refuses_a_plain_folder(compared, tmp_path):
    assert main(["report", str(compared), "--metric", "mcc"]) == 0
    assert "## Size–MCC trade-off" in (compared / "report.md").read_text()
    assert main(["report", str(tmp_path)]) == 2


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium: apt-get install chromium (as .ci/run does) to check that report.html renders")


def test_report_html_renders_in_headless_chromium(compared, tmp_path):
    browser = _browser()
    from PIL import Image

    html = report(compared)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,2000", html.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.shape == (2000, 1200, 3)
    assert (pixels.min(axis=2) < 128).mean() > 0.005  # text and lines, not a blank page
    assert (np.ptp(pixels, axis=2) > 100).mean() > 0.005  # saturated colour: the embedded plots were drawn
