"""The code a student reads stays readable in one sitting: no source file over 400 lines."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 400


def test_no_source_file_is_longer_than_the_limit():
    files = [ROOT / "module.py", *sorted((ROOT / "utils").glob("*.py"))]
    lengths = {f.relative_to(ROOT).as_posix(): len(f.read_text().splitlines()) for f in files}
    too_long = {name: n for name, n in lengths.items() if n > LIMIT}
    assert not too_long, f"over {LIMIT} lines, split by idea: {too_long}"
    assert "module.py" in lengths and len(lengths) > 20  # the files were found
