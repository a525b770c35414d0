"""Code the notebooks and the commands call, one subpackage per idea (read core/ first).

    core/      the training core: models, the training loop, optimisers, checkpoints, data sets
    search/    the hyperparameter search: grid or TPE, parallel workers, storage, results
    figures/   the figures and widgets: plots, the playground, the Train panel
    teaching/  the teaching aids: exercise checks, gradient and sanity checks, the doctor, the grader
    plumbing/  config files, command-line helpers, file reading under limits, validation, errors, paths
    commands/  the train and evaluate commands; python -m utils COMMAND runs every command
"""
