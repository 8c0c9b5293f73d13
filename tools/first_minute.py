"""Time a new user's first minutes: `make app` on a fresh clone, to the first rendered page and to the quick
demo's first result, in a real browser.

    python3 tools/first_minute.py CLONE_DIR [--port 8501] [--json out.json] [--run-timeout 1800]

CLONE_DIR is a fresh `git clone` of the project (no .venv). The script starts `make app` there (as a user
would: the real FRUGAL_HOME and store), polls Streamlit's health endpoint, then drives Debian's chromium
through playwright from the clone's own virtual environment (it exists once the app serves): it waits for
the Run page's "Run the quick demo" button, clicks it, and records when the first cell result is counted
("1/N cells") and when the run finishes. It prints one JSON object of seconds since `make app` started.
README.md ("The first minutes") and docs/benchmarks.md quote its figures. Runs with the system python3;
nothing here imports the project.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BROWSER_PHASE = r'''
import json, re, sys, time
from playwright.sync_api import expect, sync_playwright
url, t0, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
out = {}
try:
  with sync_playwright() as pw:
      b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                             args=["--no-sandbox", "--disable-dev-shm-usage"])
      page = b.new_page(viewport={"width": 1280, "height": 800})
      page.goto(url, wait_until="domcontentloaded")
      demo = page.get_by_role("button", name="Run the quick demo")
      expect(demo).to_be_visible(timeout=300_000)
      out["first_page_s"] = time.time() - t0
      demo.click()
      page.wait_for_url("**job=*", timeout=120_000)
      out["demo_started_s"] = time.time() - t0
      end = time.time() + timeout
      while time.time() < end:
          body = page.inner_text("body")
          if "first_result_s" not in out and (re.search(r"\b[1-9]\d*/\d+ cells", body) or "Run finished" in body):
              out["first_result_s"] = time.time() - t0
          for word in ("Run finished with failures", "Run finished", "Run failed", "stopped unexpectedly"):
              if word in body:
                  out["outcome"] = word
                  out["demo_finished_s"] = time.time() - t0
                  break
          if "outcome" in out:
              break
          page.wait_for_timeout(1000)
      b.close()
except Exception as exc:
    out["browser_error"] = repr(exc)[:1500]
print(json.dumps(out))
'''


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clone", type=Path)
    ap.add_argument("--port", type=int, default=8501)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--run-timeout", type=float, default=1800)
    args = ap.parse_args(argv)
    clone = args.clone.resolve()
    if (clone / ".venv").exists():
        print(f"{clone}/.venv exists: this is not a fresh clone", file=sys.stderr)
        return 2
    log = open(clone / "make-app.log", "w")  # noqa: SIM115 - make's output for the whole measurement
    t0 = time.time()
    env = dict(os.environ, STREAMLIT_SERVER_PORT=str(args.port), STREAMLIT_SERVER_HEADLESS="true")
    proc = subprocess.Popen(["make", "app"], cwd=clone, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    result: dict = {"clone": str(clone), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0))}
    try:
        health = f"http://127.0.0.1:{args.port}/_stcore/health"
        while True:
            if proc.poll() is not None:
                result["error"] = f"make app exited with {proc.returncode} (see {clone}/make-app.log)"
                break
            try:
                with urllib.request.urlopen(health, timeout=2) as r:
                    if r.status == 200:
                        result["serving_s"] = time.time() - t0
                        break
            except OSError:
                pass
            time.sleep(0.5)
        if "serving_s" in result:
            py = clone / ".venv" / "bin" / "python"
            out = subprocess.run([str(py), "-c", BROWSER_PHASE, f"http://127.0.0.1:{args.port}", str(t0),
                                  str(args.run_timeout)], capture_output=True, text=True)
            if out.returncode:
                result["error"] = out.stderr[-2000:]
            else:
                result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    mb = re.search(r"(\d+)", subprocess.run(["du", "-sm", str(clone / ".venv")], capture_output=True,
                                           text=True).stdout or "")
    result["venv_mb"] = int(mb.group(1)) if mb else None
    text = json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()}, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
