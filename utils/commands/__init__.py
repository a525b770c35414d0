"""The command lines that are not part of one idea's package: train and evaluate. Every command,
these and data, search and grade, runs as python -m utils COMMAND (utils/__main__.py)."""
