"""Every module of evaluator/ imports on its own, without Streamlit (the doctests import them all)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> list[str]:
    import evaluator

    return sorted(m.name for m in pkgutil.walk_packages(evaluator.__path__, "evaluator."))


@pytest.mark.timeout(120)
def test_every_evaluator_module_imports_without_streamlit():
    code = ("import importlib, json, sys\n"
            "bad = {}\n"
            "for name in json.loads(sys.argv[1]):\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception as exc:\n"
            "        bad[name] = repr(exc)\n"
            "print(json.dumps({'failed': bad, 'streamlit': 'streamlit' in sys.modules}))\n")
    names = _modules()
    assert len(names) > 30 and "evaluator.stats" in names
    out = subprocess.run([sys.executable, "-c", code, json.dumps(names)], cwd=ROOT, capture_output=True, text=True,
                         timeout=110, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["failed"] == {}
    assert res["streamlit"] is False  # the library never needs the app's framework
