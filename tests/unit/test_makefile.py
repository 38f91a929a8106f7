"""The Makefile's own bootstrap: it refuses a Python that is too old, with what to do."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _make(folder: Path, python: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(folder), "test", f"PYTHON={python}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_python_too_old_is_refused_and_a_broken_venv_is_not_reused(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    too_old = tmp_path / "python3.10"
    too_old.write_text("#!/bin/sh\nexit 1\n")  # fails the version check as 3.10 would
    too_old.chmod(0o755)

    first = _make(tmp_path, too_old)
    assert first.returncode != 0
    assert "needs Python 3.11 or newer" in first.stderr and "PYTHON=python3.11" in first.stderr
    assert not (tmp_path / ".venv").exists()

    # A .venv left by an earlier attempt, whose Python does not work: not used as it is.
    broken = tmp_path / ".venv" / "bin" / "python"
    broken.parent.mkdir(parents=True)
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    second = _make(tmp_path, too_old)
    assert second.returncode != 0 and "needs Python 3.11 or newer" in second.stderr
