"""Write requirements.lock: the exact versions installed in the project venv (``make lock``).

Model-weight packages (listed under ``offline.packages`` in models.yaml) and the project itself are left out:
they are data fetched by ``frugal models pull``, not code the project runs. ``make setup`` installs with the
lock as constraints, and the slow test ``tests/test_security.py::test_pip_audit_locked_requirements`` audits it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def model_packages() -> set[str]:
    data = yaml.safe_load((ROOT / "models.yaml").read_text())
    names = set()
    for m in data.get("models", []):
        names.update(p.lower().replace("_", "-") for p in (m.get("offline") or {}).get("packages", []))
    return names


def main() -> int:
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout.splitlines()
    skip = model_packages() | {"frugal"}
    keep = sorted((line for line in frozen if "==" in line
                   and line.split("==")[0].lower().replace("_", "-") not in skip), key=str.lower)
    header = ["# Exact versions of the project venv (python tools/lock.py). Used as pip constraints by make setup;",
              "# audited by the slow test tests/test_security.py. Model-weight packages are not listed."]
    (ROOT / "requirements.lock").write_text("\n".join(header + keep) + "\n")
    print(f"requirements.lock: {len(keep)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
