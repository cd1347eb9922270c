"""Small files pt_dense reads back (index metadata, model configs): errors that name the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

from pt_dense.errors import PtDenseError


def read_json(file: Path, error: type[PtDenseError], fix: str) -> object:
    """The JSON value in ``file``; a missing or unreadable file is ``error``, naming the file, the problem, ``fix``."""
    try:
        return json.loads(file.read_text())
    except FileNotFoundError as err:
        raise error(f"{file} is missing: {fix}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{file} is not valid JSON ({err}): {fix}") from err
