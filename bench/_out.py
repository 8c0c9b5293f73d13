"""Where every benchmark writes: its Markdown section (also printed) and the raw figures as JSON beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_section(out: str | Path, md: list[str], raw: Any) -> None:
    """Write ``out`` (Markdown lines) and ``out`` with a .json suffix (``raw``), then print the Markdown."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    print("\n".join(md))
