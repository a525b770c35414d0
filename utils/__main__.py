"""python -m utils COMMAND [ARGS]: the project's command lines.

    python -m utils data        find or download Fashion-MNIST and check it
    python -m utils train       train the model an experiment config describes
    python -m utils search      run or resume the hyperparameter search a config describes
    python -m utils evaluate    test a trained model from its checkpoint: the assignment's test step
    python -m utils grade       grade exercise notebooks (one, or a folder) into a table: part, verdict, bug

`python -m utils COMMAND --help` shows a command's options and their defaults.
"""
import importlib
import sys

from utils.plumbing.language import _

# Each command's module is imported only when it runs: search needs Optuna, grade jupyter_client.
COMMANDS = {"data": "utils.core.datasets", "train": "utils.commands.train", "search": "utils.search.run",
            "evaluate": "utils.commands.evaluate", "grade": "utils.teaching.grader"}


def usage():
    """What python -m utils --help prints: the docstring above, in the reader's language."""
    return _("python -m utils COMMAND [ARGS]: the project's command lines.\n"
             "\n"
             "    python -m utils data        find or download Fashion-MNIST and check it\n"
             "    python -m utils train       train the model an experiment config describes\n"
             "    python -m utils search      run or resume the hyperparameter search a config describes\n"
             "    python -m utils evaluate    test a trained model from its checkpoint: the assignment's test step\n"
             "    python -m utils grade       grade exercise notebooks (one, or a folder) into a table: part, "
             "verdict, bug\n"
             "\n"
             "`python -m utils COMMAND --help` shows a command's options and their defaults.")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(_("error: unknown command {name}; the commands: {commands} (python -m utils --help)").format(
            name=repr(name), commands=", ".join(COMMANDS)), file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[name]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
