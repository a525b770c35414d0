"""The training core a student reads: the models built from module.py's layers, the one
training loop, optimisers and schedules, checkpoints, and the data sets."""
