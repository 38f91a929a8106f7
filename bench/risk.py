"""The risk model's quality on a time split of the JIT calibration data, beside the baselines.

    .venv/bin/python -m bench.risk [--input ../shared/data/jit/commits.jsonl.gz] [--split 2015]
                                   [--speed-commits 40000] [--json FILE]

Every commit is replayed in order through the product's history store and features
(`flowlens.risk.fit.rows`, the steps `flowlens risk-eval` and the poller take). The model is
fitted with the product's own procedure (`fit_selected`, as tools/fit_risk_model.py does) on
the labelled commits of the years before `--split` only, and scored on the years from it, so
nothing of the scored years reaches the fit. Beside it, on the same scored commits:

* lines added   -- ranking by raw lines added (LA);
* LApredict     -- a logistic regression on log(1 + LA) fitted per project on the same
                   earlier years (Zeng et al., ISSTA 2021).

Reported: ROC AUC per project, their mean, the pooled AUC, and for each scorer the precision
at its top 10 % (per scorer); for the model also at its own "high" cut (the fitted 90th
percentile): share flagged and precision. Then `flowlens risk-eval` is timed on a stream of
`--speed-commits` commits (the calibration stream, repeated with new shas to reach the count).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import ROOT, git_commit, machine, table
from flowlens.risk import fit as F
from flowlens.risk.replay import commits, open_text

DEFAULT_INPUT = ROOT.parent / "shared" / "data" / "jit" / "commits.jsonl.gz"


def per_project(rows: list[F.Row], values: list[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for project in sorted({r.project for r in rows}):
        idx = [i for i, r in enumerate(rows) if r.project == project]
        out[project] = F.auc([rows[i].label for i in idx], [values[i] for i in idx])
    return out


def top_precision(rows: list[F.Row], values: list[float], share: float = 0.10) -> float:
    order = sorted(range(len(rows)), key=lambda i: -values[i])[: max(1, int(len(rows) * share))]
    return sum(rows[i].label for i in order) / len(order)


def lapredict(train: list[F.Row], test: list[F.Row]) -> list[float]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    out = [0.0] * len(test)
    for project in sorted({r.project for r in test}):
        fit_rows = [r for r in train if r.project == project]
        idx = [i for i, r in enumerate(test) if r.project == project]
        if len({r.label for r in fit_rows}) < 2:  # no history to fit: lines added alone
            for i in idx:
                out[i] = float(np.log1p(test[i].la))
            continue
        model = LogisticRegression().fit(np.log1p([[r.la] for r in fit_rows]),
                                         [r.label for r in fit_rows])  # fmt: skip
        probs = model.predict_proba(np.log1p([[test[i].la] for i in idx]))[:, 1]
        for i, p in zip(idx, probs, strict=True):
            out[i] = float(p)
    return out


def speed(source: Path, count: int) -> dict[str, Any]:
    """Wall and CPU seconds of `flowlens risk-eval` over `count` commits."""
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "stream.jsonl"
        written = 0
        with stream.open("w", encoding="utf-8") as out:
            round_ = 0
            while written < count:
                with open_text(source) as reader:
                    for line in reader:
                        if written >= count:
                            break
                        record = json.loads(line)
                        if round_:
                            record["sha"] = f"{record['sha']}-{round_}"
                        out.write(json.dumps(record) + "\n")
                        written += 1
                round_ += 1
        before = os.times()
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "flowlens", "risk-eval", "--input", str(stream), "--output",
             str(Path(tmp) / "out.jsonl"), "--quiet"],
            check=True, cwd=ROOT, timeout=600,
        )  # fmt: skip
        wall = time.monotonic() - started
        after = os.times()
        lines = sum(1 for _ in (Path(tmp) / "out.jsonl").open(encoding="utf-8"))
    cpu = (after.children_user - before.children_user) + (after.children_system
                                                           - before.children_system)  # fmt: skip
    return {"commits": lines, "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--split", type=int, default=2015, help="first scored year")
    parser.add_argument("--speed-commits", type=int, default=40_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.input.exists():
        print(f"bench.risk: {args.input} does not exist", file=sys.stderr)
        return 2
    print(f"# bench.risk  commit {git_commit()}  {machine()}")
    with open_text(args.input) as reader:
        data = F.rows(commits(reader))
    train = [r for r in data if r.year < args.split]
    test = [r for r in data if r.year >= args.split]
    model = F.fit_selected(train)
    scored = F.scores(model, test)
    scorers = {
        "FlowLens risk model": scored,
        "lines added": [float(r.la) for r in test],
        "LApredict": lapredict(train, test),
    }
    projects = sorted({r.project for r in test})
    results: dict[str, Any] = {"split": args.split, "train": len(train), "test": len(test),
                               "l2_strength_c": model["fitted_on"]["l2_strength_c"],
                               "scorers": {}}  # fmt: skip
    rows = []
    for name, values in scorers.items():
        per = per_project(test, values)
        known = [v for v in per.values() if v is not None]
        mean = sum(known) / len(known)
        pooled = F.auc([r.label for r in test], values)
        top = top_precision(test, values)
        results["scorers"][name] = {"per_project": per, "mean": mean, "pooled": pooled,
                                    "precision_top10": top}  # fmt: skip
        rows.append([name, *(f"{per[p]:.3f}" if per[p] is not None else "-" for p in projects),
                     f"**{mean:.3f}**", f"{pooled:.3f}", f"{top:.3f}"])  # fmt: skip
    c_reg = model["fitted_on"]["l2_strength_c"]
    print(f"\nfit on {len(train):,} labelled commits before {args.split}, scored "
          f"{len(test):,} from {args.split} (C={c_reg})\n")  # fmt: skip
    print(table(["scorer", *projects, "mean", "pooled", "precision @ top 10%"], rows))

    high_at = model["thresholds"]["high"]
    medium_at = model["thresholds"]["medium"]
    flagged = [i for i, v in enumerate(scored) if v >= high_at]
    medium = [i for i, v in enumerate(scored) if medium_at <= v < high_at]
    low = [i for i, v in enumerate(scored) if v < medium_at]
    levels = []
    for name, idx in (("high", flagged), ("medium", medium), ("low", low)):
        rate = sum(test[i].label for i in idx) / len(idx) if idx else float("nan")
        levels.append([name, len(idx), f"{len(idx) / len(test):.1%}", f"{rate:.3f}"])
    results["levels"] = {lv[0]: {"count": lv[1], "share": lv[2], "buggy_rate": lv[3]}
                         for lv in levels}  # fmt: skip
    print(
        f"\nlevels at the fitted cuts (medium {medium_at:.3f}, high {high_at:.3f}); the "
        f"scored commits' bug rate is {sum(r.label for r in test) / len(test):.3f}\n"
    )
    print(table(["level", "commits", "share", "buggy (precision for high)"], levels))

    timing = speed(args.input, args.speed_commits)
    results["risk_eval"] = timing
    print(f"\nflowlens risk-eval: {timing['commits']:,} commits in {timing['wall_seconds']} s "
          f"wall, {timing['cpu_seconds']} s CPU")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
