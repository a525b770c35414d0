"""The project's own exception types, one per area, so a caller can catch exactly one kind.

Each is a ValueError: code that caught ValueError before still catches them. Every message
names what was wrong (the file, the key, the value) and what was expected.
"""


class ConfigError(ValueError):
    """An experiment config or a hyperparameter has an unknown key or a bad value."""


class CheckpointError(ValueError):
    """A checkpoint file is missing parts, corrupt, tampered with or too large."""


class DataFileError(ValueError):
    """A data file (IDX, CIFAR-10 batch, prepared .npz) is corrupt, truncated or too large."""


class SearchError(ValueError):
    """The hyperparameter search's storage or settings cannot be used."""
