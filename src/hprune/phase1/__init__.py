"""Phase 1: score a training set (R recorded fine-tunes): one run (run.py), the runs on Ray (executors.py), the scorer (scorer.py)."""
