"""Every tool answers --help before importing torch or detectron2 (the slow imports), so that
--help and argument errors answer at once."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# runs a tool as `python tools/<tool>.py --help` would, then reports the heavy modules imported
_PROBE = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("torch", "detectron2", "freezedet") if m in sys.modules)
print("EXIT", code, "HEAVY", ",".join(heavy) or "-")
"""


@pytest.mark.parametrize("tool", ["predict", "export", "train_net"])
def test_help_does_not_import_torch(tool):
    path = os.path.join(ROOT, "tools", f"{tool}.py")
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, path], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage:" in run.stdout and "examples:" in run.stdout, run.stdout[:2000]
    assert run.stdout.strip().splitlines()[-1] == "EXIT 0 HEAVY -", run.stdout[-500:]
