"""Fit the built-in risk model on the JIT calibration data and write its coefficients.

    python tools/fit_risk_model.py [--input ../shared/data/jit/commits.jsonl.gz]
                                   [--output shared/flowlens/risk/coefficients.json]

The commits are replayed in order through the product's own history store and features
(`flowlens.risk.fit.rows`). The L2 strength is chosen on the last two years before the
newest two (fit on the earlier years, mean-over-projects AUC on those); the final model is then
fitted on every labelled commit. The "high" cut is the 90th percentile of the fitted scores,
"medium" the 60th. The output is deterministic for a given input (no dates in it).
See docs/RISK_MODEL.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))

from flowlens.risk import fit as F  # noqa: E402
from flowlens.risk.replay import commits, open_text  # noqa: E402

DEFAULT_INPUT = ROOT.parent / "shared" / "data" / "jit" / "commits.jsonl.gz"
DEFAULT_OUTPUT = ROOT / "shared" / "flowlens" / "risk" / "coefficients.json"


def build(input_path: Path) -> dict:
    with open_text(input_path) as reader:
        data = F.rows(commits(reader))
    model = F.fit_selected(data)
    model["fitted_on"].update({
        "data": "ApacheJIT calibration period (2003-2016), see docs/RISK_MODEL.md",
        "sha256": hashlib.sha256(input_path.read_bytes()).hexdigest(),
    })  # fmt: skip
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    if not args.input.exists():
        print(f"fit_risk_model: {args.input} does not exist", file=sys.stderr)
        return 2
    model = build(args.input)
    args.output.write_text(json.dumps(model, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    info = model["fitted_on"]
    print(f"fitted on {info['labelled_commits']} labelled commits (C={info['l2_strength_c']}); "
          f"thresholds {model['thresholds']} -> {args.output}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
