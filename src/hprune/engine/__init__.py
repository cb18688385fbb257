"""Training machinery (torch): models and their loading (models.py), the fine-tuning loop (loop.py), several processes (distributed.py), progress bars (progress.py)."""
