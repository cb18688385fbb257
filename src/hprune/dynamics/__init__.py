"""Training dynamics: recorded from the training steps (record.py), kept per run in files (store.py)."""
