"""Code the notebooks call: data, optimisers, the training loop, checkpoints, search and plots."""
