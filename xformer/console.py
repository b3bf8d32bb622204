"""The two consoles every command prints through: results on stdout, progress, notes and errors on stderr.

In a terminal rich uses its width; in pipes and CI logs, where rich would assume 80 columns and wrap the
tables, the width is $COLUMNS when set and 150 otherwise.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

__all__ = ["PIPE_WIDTH", "console", "err_console"]

PIPE_WIDTH = 150


def _width(stream) -> int | None:
    if stream.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr), soft_wrap=True)  # messages: one line each
