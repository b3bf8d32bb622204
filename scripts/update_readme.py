"""Regenerate the README sections that are derived from code or data (never typed by hand).

Each section sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` markers.
Run: python scripts/update_readme.py [--check]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def replace_section(text: str, name: str, content: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no <!-- {name}:start --> ... <!-- {name}:end --> section")
    return pattern.sub(lambda m: m.group(1) + content.rstrip() + "\n" + m.group(2), text)


def sections() -> dict[str, str]:
    from xformer.export.formats import format_table_markdown

    return {"formats": format_table_markdown()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is out of date")
    args = parser.parse_args()
    text = README.read_text()
    updated = text
    for name, content in sections().items():
        updated = replace_section(updated, name, content)
    if args.check:
        return int(updated != text)
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
