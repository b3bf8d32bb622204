"""README sections generated from code must be current."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_readme_sections_are_up_to_date():
    result = subprocess.run([sys.executable, "scripts/update_readme.py", "--check"], cwd=ROOT)
    assert result.returncode == 0, "README is stale: run `python scripts/update_readme.py`"


def test_readme_names_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
