"""Make the project importable from the tests (module.py and utils/ live at the top level)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
