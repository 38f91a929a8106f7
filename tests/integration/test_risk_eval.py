"""`flowlens risk-eval` as a user runs it, and the committed coefficients as the fitting
script makes them."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_cli import ROOT, flowlens, one_line

JIT = ROOT.parent / "shared" / "data" / "jit" / "commits.jsonl.gz"


def stream(n: int, seed: int = 7, labels: bool = True) -> list[dict[str, object]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        files = [{"path": f"m{rnd.randint(0, 5)}/F{rnd.randint(0, 9)}.java", "status": "modified",
                  "additions": rnd.randint(0, 300), "deletions": rnd.randint(0, 50)}
                 for _ in range(rnd.randint(1, 6))]  # fmt: skip
        commit: dict[str, object] = {
            "repository": f"apache/p{i % 2}", "sha": f"{i:040x}",
            "committed_at": f"2015-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}T10:00:00-05:00",
            "author": rnd.choice(["ann", "bob", "cat"]), "title": rnd.choice(["Fix x", "Add y"]),
            "body": "", "files": files,
            "additions": sum(int(f["additions"]) for f in files),  # type: ignore[call-overload]
            "deletions": sum(int(f["deletions"]) for f in files),  # type: ignore[call-overload]
        }  # fmt: skip
        if labels and i % 3:
            commit["label"] = i % 2
        out.append(commit)
    return out


def write(path: Path, commits: list[dict[str, object]]) -> Path:
    text = "".join(json.dumps(c) + "\n" for c in commits)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_risk_eval_scores_every_commit_in_order(tmp_path: Path) -> None:
    commits = stream(300)
    source = write(tmp_path / "in.jsonl.gz", commits)
    code, _, err = await flowlens("risk-eval", "--input", str(source),
                                    "--output", str(tmp_path / "out.jsonl"))  # fmt: skip
    assert code == 0, err
    rows = read(tmp_path / "out.jsonl")
    assert [r["sha"] for r in rows] == [c["sha"] for c in commits]
    for r in rows:
        assert set(r) == {"sha", "risk_level", "score", "confidence"}
        score = r["score"]
        assert isinstance(score, float) and 0 <= score <= 1
        assert r["risk_level"] in ("low", "medium", "high") and 0 <= r["confidence"] <= 1  # type: ignore[operator]
    assert len({r["risk_level"] for r in rows}) > 1
    assert "300 commits scored" in err
    # Labels are never read: the same stream without them scores the same, and plain JSON
    # lines read like gzip.
    plain = write(tmp_path / "plain.jsonl", stream(300, labels=False))
    code, _, err = await flowlens("risk-eval", "--input", str(plain), "--output",
                                  str(tmp_path / "plain-out.jsonl"), "--quiet")  # fmt: skip
    assert code == 0 and err == ""
    assert read(tmp_path / "plain-out.jsonl") == rows


async def test_risk_eval_keeps_history_in_input_order(tmp_path: Path) -> None:
    """The same commit scores higher after a busy history of its file than on none."""
    commit = {"repository": "apache/p", "committed_at": "2016-01-10T00:00:00Z", "author": "ann",
              "title": "Change A", "body": "",
              "files": [{"path": "src/A.java", "status": "modified", "additions": 40,
                         "deletions": 2}], "additions": 40, "deletions": 2}  # fmt: skip
    before = [dict(commit, sha=f"{i:040x}", author=f"dev{i}",
                   committed_at=f"2016-01-0{1 + i % 8}T00:00:00Z") for i in range(30)]  # fmt: skip
    last = dict(commit, sha="f" * 40)
    source = write(tmp_path / "h.jsonl", [*before, last])
    code, _, err = await flowlens("risk-eval", "--input", str(source), "--output",
                                  str(tmp_path / "h-out.jsonl"))  # fmt: skip
    assert code == 0, err
    rows = read(tmp_path / "h-out.jsonl")
    first, after = rows[0], rows[-1]
    # 30 earlier changes by 30 developers make the file riskier (NDEV, NUC), not safer; in
    # shuffled order the last row would be scored on an empty history like the first.
    assert after["score"] > first["score"]


async def test_risk_eval_errors_are_one_line(tmp_path: Path) -> None:
    code, _, err = await flowlens("risk-eval", "--input", str(tmp_path / "missing.jsonl"),
                                  "--output", str(tmp_path / "o.jsonl"))  # fmt: skip
    assert code == 2
    one_line(err, "cannot read", "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(stream(1)[0]) + "\n{oops\n", encoding="utf-8")
    code, _, err = await flowlens("risk-eval", "--input", str(bad), "--output",
                                  str(tmp_path / "o.jsonl"))  # fmt: skip
    assert code == 1
    one_line(err, "bad.jsonl", "line 2: not JSON")


@pytest.mark.skipif(not JIT.exists() and not os.environ.get("CI"),
                    reason="needs ../shared/data/jit beside the repository")  # fmt: skip
def test_the_committed_coefficients_are_what_the_fitting_script_makes(tmp_path: Path) -> None:
    out = tmp_path / "coefficients.json"
    script = str(ROOT / "tools" / "fit_risk_model.py")
    subprocess.run([sys.executable, script, "--output", str(out)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    committed = json.loads((ROOT / "shared/flowlens/risk/coefficients.json").read_text("utf-8"))
    assert json.loads(out.read_text("utf-8")) == committed
