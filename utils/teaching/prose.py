"""Sentences a notebook computes: results stated in prose come from the run that printed them.

    say(f"The best epoch is {best_epoch} of {num_epochs}: validation accuracy {pct(val_acc)}.")

In Jupyter the text renders as Markdown (bold, $math$, lists); its plain-text form is the
same text, so nbval compares it like any printed line, and a script or a terminal sees it
as printed text.

In the Chinese edition (utils.plumbing.language) a sentence is translated before its numbers go
in: pass the English as a template with {name} fields and the values as keywords,

    say("The best epoch is {best_epoch} of {num_epochs}: validation accuracy {accuracy}.",
        best_epoch=best_epoch, num_epochs=num_epochs, accuracy=pct(val_acc))

and the catalog (locale/zh_CN/LC_MESSAGES/messages.po) holds the template's Chinese. A sentence
built by an f-string is shown as it is.
"""
from IPython import get_ipython
from IPython.display import display

from utils.plumbing.language import _


class Sentence(str):
    """Text that Jupyter renders as Markdown and every other front end shows as it is."""

    def _repr_markdown_(self):
        return str(self)

    def __repr__(self):
        return str(self)


def say(text, **values):
    """Show text (Markdown) as a cell output, in the reader's language; outside IPython, print it.

    With values, text is a template: translated, then filled in with str.format(**values).
    Returns nothing.
    """
    sentence = Sentence(_(text).format(**values) if values else _(text))
    if get_ipython() is not None:
        display(sentence)
    else:
        print(sentence)


def file_prefix(cfg):
    """"" for the default data set (Fashion-MNIST), else e.g. "cifar10_": the figures and files of
    another data set go beside the default ones instead of replacing them."""
    dataset = cfg["data"]["dataset"]
    return "" if dataset == "fashion_mnist" else f"{dataset}_"


def pct(x, digits=1):
    """0.9019 -> '90.2%' (digits after the point)."""
    return f"{100 * x:.{digits}f}%"
