"""Tables a notebook shows, in the reader's language: the code keeps its English labels, the reader sees theirs.

    moved = pd.DataFrame(...)            # columns "relative change", "RMS end / start": the code uses these
    readable(moved.round(3))             # shown with Chinese column labels when NN_LANG=zh

A table is translated where it is shown, never where it is computed: the code goes on indexing
its columns by their English names in either language. In English readable() returns the table
itself, so the English notebooks show exactly what they showed before.
"""
import pandas as pd

from utils.plumbing.language import _, language


def word(value):
    """A label or a text cell in the reader's language (values that are not text are kept)."""
    return _(value) if isinstance(value, str) and value else value


def readable(table):
    """The DataFrame with its column labels, index labels, axis names and text cells translated, for display.

    Labels and texts without a translation stay as they are (identifiers like val_acc, numbers).
    In Chinese, pandas is told that a Chinese character takes two columns, so printed tables line up.
    """
    if language() == "en":
        return table
    pd.set_option("display.unicode.east_asian_width", True)
    shown = table.rename(index=word, columns=word)
    shown = shown.rename_axis(index=word, columns=word)
    for column in shown.columns:
        if pd.api.types.is_object_dtype(shown[column]) or pd.api.types.is_string_dtype(shown[column]):
            shown[column] = shown[column].map(word)
    return shown
