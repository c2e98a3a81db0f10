"""Every tool answers --help before importing torch or detectron2 (the slow imports), so that
--help and argument errors answer at once."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# runs a tool as `python tools/<tool>.py --help` would, then reports the heavy modules imported
_PROBE = """
import os, runpy, sys
sys.argv = [sys.argv[1], "--help"]
sys.path.insert(0, os.path.dirname(sys.argv[0]))  # as `python tools/<tool>.py` does
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("torch", "detectron2", "freezedet") if m in sys.modules)
print("EXIT", code, "HEAVY", ",".join(heavy) or "-")
"""


# every command-line tool; detectron2_C_standin.py is no tool but the module that
# install_detectron2.py copies to detectron2/_C.py (it imports torch, as detectron2/_C must), and
# _stdlib_cli.py is the tools' shared helper
TOOLS = sorted(
    name[:-3]
    for name in os.listdir(os.path.join(ROOT, "tools"))
    if name.endswith(".py") and name != "detectron2_C_standin.py" and not name.startswith("_")
)


def test_every_tool_is_covered():
    assert {"train_net", "predict", "export", "evaluate", "selective_search"} <= set(TOOLS), TOOLS
    assert len(TOOLS) == 13, TOOLS


@pytest.mark.parametrize("tool", TOOLS)
def test_help_does_not_import_torch(tool):
    path = os.path.join(ROOT, "tools", f"{tool}.py")
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, path], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage:" in run.stdout, run.stdout[:2000]
    if tool in ("predict", "export", "train_net"):
        assert "examples:" in run.stdout, run.stdout[:2000]
    if tool != "install_detectron2":  # run by make before freezedet exists: no run_tool
        assert "--debug" in run.stdout, run.stdout[:2000]
    assert run.stdout.strip().splitlines()[-1] == "EXIT 0 HEAVY -", run.stdout[-500:]
