"""hprune inside other training loops: transformers' Trainer (hf.py)."""
