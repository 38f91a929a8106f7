"""The dashboard's pure modules under node's own test runner (tests/dashboard/*.test.mjs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_tests_pass() -> None:
    node = shutil.which("node")
    assert node is not None
    tests = sorted(str(p) for p in (ROOT / "tests" / "dashboard").glob("*.test.mjs"))
    assert tests, "no node tests found"
    result = subprocess.run(
        [node, "--test", *tests], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
