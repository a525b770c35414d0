"""The code a student reads stays findable and readable: packages by idea, imports one way, short files."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 400
# Imports go downwards only: a module may import its own package and the levels below its own.
LEVELS = {"plumbing": 0, "module": 1, "core": 2, "search": 3, "figures": 3, "teaching": 3, "commands": 4,
          "__main__": 5}


def sources():
    return [ROOT / "module.py", *sorted((ROOT / "utils").rglob("*.py"))]


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def area(name):
    """utils.core.train -> "core"; module -> "module"; utils -> "utils"."""
    parts = name.split(".")
    return parts[0] if parts[0] != "utils" else parts[1] if len(parts) > 1 else "utils"


def project_imports(path):
    """[(line number, imported project module, inside a function?, source line)] of one file."""
    tree, lines = ast.parse(path.read_text()), path.read_text().splitlines()
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        if isinstance(node, ast.ImportFrom) and node.module == "utils":
            names = [f"utils.{a.name}" for a in node.names]
        for name in names:
            found.append((node.lineno, name, id(node) in in_function, lines[node.lineno - 1]))
    return found


def test_no_source_file_is_longer_than_the_limit():
    lengths = {f.relative_to(ROOT).as_posix(): len(f.read_text().splitlines()) for f in sources()}
    too_long = {name: n for name, n in lengths.items() if n > LIMIT}
    assert not too_long, f"over {LIMIT} lines, split by idea: {too_long}"
    assert "module.py" in lengths and len(lengths) > 20  # the files were found


def test_every_file_of_utils_sits_in_a_package_of_its_idea():
    loose = [f.name for f in (ROOT / "utils").glob("*.py") if f.name not in ("__init__.py", "__main__.py")]
    assert not loose, f"utils/ holds subpackages only; move these into one: {loose}"
    assert {p.name for p in (ROOT / "utils").iterdir() if (p / "__init__.py").is_file()} == set(LEVELS) - {
        "module", "__main__"}


def test_imports_go_one_way_and_none_hides_in_a_function():
    upward, hidden = [], []
    for path in sources():
        here = module_name(path)
        for line, name, in_function, text in project_imports(path):
            if not (name == "module" or name.startswith("utils.")):
                if in_function and "#" not in text:
                    hidden.append(f"{path.relative_to(ROOT)}:{line}: {text.strip()}")
                continue
            if in_function:
                hidden.append(f"{path.relative_to(ROOT)}:{line}: {text.strip()}")
            if area(name) != area(here) and LEVELS[area(name)] >= LEVELS[area(here)]:
                upward.append(f"{path.relative_to(ROOT)}:{line}: {area(here)} imports {name}")
    assert not upward, "imports against the levels (plumbing < module.py < core < search, figures, " \
                       "teaching < commands):\n" + "\n".join(upward)
    assert not hidden, ("imports inside functions (only for a heavy optional library, with a comment "
                        "saying which):\n" + "\n".join(hidden))


def test_no_import_cycle():
    graph = {module_name(p): {n for _, n, _, _ in project_imports(p) if n == "module" or n.startswith("utils.")}
             for p in sources()}
    names = set(graph)
    graph = {m: {n if n in names else n.rsplit(".", 1)[0] for n in deps} & names for m, deps in graph.items()}
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for n in sorted(graph[m]):
            assert state.get(n) != "open", "import cycle: " + " -> ".join([*stack, m, n])
            if n not in state:
                visit(n, [*stack, m])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_the_readme_code_map_names_every_package():
    readme = (ROOT / "README.md").read_text()
    packages = sorted(p.name for p in (ROOT / "utils").iterdir() if (p / "__init__.py").is_file())
    missing = [p for p in packages if not re.search(rf"`utils/{p}/`", readme)]
    assert not missing, f"README.md's code map does not name: {missing}"
