"""The package's shape: one source of defaults, and no torch at `import hprune` or `hprune --help`."""
import subprocess
import sys

from hprune.config import ScoreConfig, train_config


def _imports_torch(code: str) -> bool:
    check = f"{code}\nimport sys\nprint('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout.split()
    return out != ["False", "False"]


def test_import_hprune_loads_no_torch_until_a_trainer_is_asked_for():
    assert not _imports_torch("import hprune; hprune.h_scores; hprune.ScoreConfig")
    assert _imports_torch("import hprune; hprune.HScorer")


def test_the_cli_builds_its_help_without_torch():
    assert not _imports_torch("from hprune.cli import build_parser; build_parser().format_help()")


def test_the_python_defaults_are_the_cli_defaults():
    # minilm (22M parameters) on a small classification set, as the README's `hprune score` on TREC
    assert ScoreConfig().train == train_config(n_examples=5452, model_parameters=22_713_216, task_type="classification")
