"""Plumbing the rest stands on: experiment config files, command-line helpers, reading files
under size limits and writing them atomically, argument validation, errors and paths."""
