"""Every benchmark script starts and explains its options: an import broken by a refactor fails here, not in the
first measurement someone runs days later."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def test_the_benchmarks_folder_is_found():
    assert len(SCRIPTS) >= 8


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_benchmark_script_prints_its_usage(script):
    done = subprocess.run([sys.executable, str(script), "--help"], check=False, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:"), done.stdout
