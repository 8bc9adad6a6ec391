"""Hypothesis properties of every public kernel (tests/properties.py), each
kernel in a process of its own: a crash or a hang fails its test, not the
session. RNN_FAST_PROPERTY_EXAMPLES sets the examples per kernel (default 300;
the draws are derandomized, so a run is reproducible)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from properties import PROPERTIES

HERE = Path(__file__).parent
EXAMPLES = int(os.environ.get("RNN_FAST_PROPERTY_EXAMPLES", "300"))


def run_isolated(args, timeout=600):
    """Runs `python args...` in tests/; returns (ok, report)."""
    try:
        done = subprocess.run([sys.executable, *args], cwd=HERE, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return False, f"no result after {timeout} s (a hang?)\n{e.stdout or ''}{e.stderr or ''}"
    if done.returncode < 0:
        return False, f"killed by {signal.Signals(-done.returncode).name} (a crash)\n{done.stdout}{done.stderr}"
    return done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("kernel", sorted(PROPERTIES))
def test_kernel_properties(kernel):
    ok, report = run_isolated(["properties.py", kernel, str(EXAMPLES)])
    assert ok, report


def test_a_crash_is_reported_as_a_failure():
    ok, report = run_isolated(["-c", "import os; os.abort()"])
    assert not ok and "SIGABRT" in report


def test_a_hang_is_reported_as_a_failure():
    ok, report = run_isolated(["-c", "import time; time.sleep(60)"], timeout=1)
    assert not ok and "a hang" in report
