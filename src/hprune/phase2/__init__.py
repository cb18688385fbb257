"""Phase 2: fine-tune on the full set or a subset (finetune.py), and compare subsets with baselines at equal size (compare.py)."""
