"""The hyperparameter search: a grid or TPE over an experiment, run by parallel workers on
Optuna's storage, resumable, with its results table and plots."""
