"""Django's own test runner runs the integration's Django tests (django_app/tests.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def test_djangos_test_runner_passes_the_integration_tests(server) -> None:
    path = [str(HERE), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "django_app.settings",
        "TIDINGS_URL": server.http,
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
    }
    result = subprocess.run(
        [sys.executable, "-m", "django", "test", "django_app", "--verbosity", "2"],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = result.stderr[-4000:]
    assert result.returncode == 0, report
    assert "Ran 6 tests" in report and "\nOK" in report, report
