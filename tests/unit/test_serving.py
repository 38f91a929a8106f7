"""How the ingest function's process is set up for serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flowlens.serving import GC_THRESHOLDS

ROOT = Path(__file__).resolve().parents[2]


def test_the_ingest_function_settles_the_collector_once_loaded() -> None:
    # Loaded as functions-framework loads it (its module run at import), in a process of its own.
    probe = (
        "import gc, json, runpy; runpy.run_path('functions/ingest/main.py');"
        "print(json.dumps(gc.get_threshold()))"
    )
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
           "GITHUB_WEBHOOK_SECRET": "s", "LOG_FORMAT": "json"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    thresholds = json.loads(out.stdout.strip().splitlines()[-1])
    assert tuple(thresholds) == GC_THRESHOLDS != (700, 10, 10)
