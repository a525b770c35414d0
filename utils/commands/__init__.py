"""The command lines, run as python -m utils COMMAND (see utils/__main__.py)."""
