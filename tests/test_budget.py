"""benchmarks/budget.py end to end on a tiny scoring: compare at budgets, then docs/budget.{md,json} and the plot."""
import json
import sys
from pathlib import Path

import pytest

from conftest import trec_files
from hprune.cli import main
from hprune.config import DEFAULT_SELECTION

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.slow
def test_budget_benchmark_compares_and_publishes(tmp_path, tiny_bert):
    import budget

    train, evalf = trec_files(tmp_path, 60, 20)
    scoring = tmp_path / "scoring"
    assert main(["score", "--train", str(train), "--model", tiny_bert, "--runs", "3", "--epochs", "1", "--lr", "1e-3",
                 "--batch-size", "16", "--threads", "1", "--out", str(scoring), "--quiet"]) == 0
    docs = tmp_path / "docs"
    docs.mkdir()
    argv = ["--tasks", "trec", "--scoring", str(scoring), "--train", str(train), "--eval", str(evalf), "--model", tiny_bert,
            "--fractions", "0.3,0.5", "--methods", ",".join(dict.fromkeys([DEFAULT_SELECTION, "random", "rs2", "ccs", "hscore"])), "--seeds", "1", "--threads", "1",
            "--work", str(tmp_path / "work"), "--docs", str(docs)]
    assert budget.main(argv) == 0
    rows = json.loads((docs / "budget.json").read_text())
    assert {"task", "fraction", "size", "method", "mean", "std", "values", "seeds", "default"} <= set(rows[0])
    at = {(r["fraction"], r["method"]): r for r in rows}
    assert at[1.0, "full"]["size"] == 60
    for fraction, size in ((0.3, 18), (0.5, 30)):
        for method in (DEFAULT_SELECTION, "random", "rs2", "ccs"):
            assert at[fraction, method]["size"] == size and at[fraction, method]["seeds"] == [1000]
        assert "subset" in at[fraction, "hscore"]
    assert [r["method"] for r in rows if r["default"]] == [DEFAULT_SELECTION] * 2
    assert "## Against the target" in (docs / "budget.md").read_text() and (docs / "budget-trec.png").stat().st_size > 0
    # each cell says where its fine-tunes ran, and budget.md beside the training time
    assert all(r["device"] == "cpu" and r["threads"] == 1 and 0 <= r["load"][0] <= r["load"][1] for r in rows)
    assert f"({len(rows)} cells recorded cpu, at most 1 torch thread per fine-tune, 1-minute load" in (docs / "budget.md").read_text()

    # a later run on another machine adds cells without the full set (here hscore alone, which names no budget); the published ones stay
    assert budget.main([*argv[:argv.index("--fractions")], "--fractions", "0.7", "--methods", "hscore", "--seeds", "1", "--threads", "1",
                        "--work", str(tmp_path / "elsewhere"), "--docs", str(docs), "--no-full"]) == 0
    later = {(r["fraction"], r["method"]): r for r in json.loads((docs / "budget.json").read_text())}
    assert later[1.0, "full"] == at[1.0, "full"] and later[0.3, "random"] == at[0.3, "random"] and later[0.7, "hscore"]["seeds"] == [1000]
    assert "full" not in (tmp_path / "elsewhere" / "trec" / "budget" / "results.csv").read_text()
