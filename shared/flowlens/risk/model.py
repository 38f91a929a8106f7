"""The risk model: a logistic regression over the transformed features, fitted offline.

score = 1 / (1 + exp(-(b0 + sum_i w_i * z_i))), z_i = (t_i(x_i) - mean_i) / scale_i, where t_i
is log1p for counts and durations and the identity otherwise. A feature's contribution is
w_i * z_i: log-odds against a change of average measurements in the calibration data, so the
drivers a summary names are exactly the terms of the score.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from flowlens.risk.features import Features

RiskLevel = Literal["low", "medium", "high"]

# Feature -> (transform, how a summary names it).
TERMS: dict[str, tuple[str, str]] = {
    "la": ("log1p", "lines added"),
    "ld": ("log1p", "lines deleted"),
    "nf": ("log1p", "files changed"),
    "nd": ("log1p", "directories changed"),
    "ns": ("log1p", "subsystems changed"),
    "entropy": ("identity", "spread across files"),
    "fix": ("identity", "title names a fix"),
    "exp": ("log1p", "author's earlier changes here"),
    "nuc": ("log1p", "earlier changes of these files"),
    "ndev": ("log1p", "earlier authors of a file"),
    "age_days": ("log1p", "days since the files last changed"),
    "unseen": ("identity", "share of files not seen changed before"),
}
TERM_NAMES = tuple(TERMS)


def transformed(features: Features) -> list[float]:
    """The model's inputs, in TERM_NAMES order (before standardising)."""
    raw = features.as_dict()
    return [math.log1p(max(raw[n], 0.0)) if TERMS[n][0] == "log1p" else raw[n]
            for n in TERM_NAMES]  # fmt: skip


@dataclass(frozen=True)
class Driver:
    """One term of the score: what it is, its measured value, and its log-odds."""

    name: str
    label: str
    value: float
    contribution: float

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.name, "label": self.label, "value": round(self.value, 3),
                "contribution": round(self.contribution, 3)}  # fmt: skip

    def describe(self) -> str:
        value = f"{self.value:.2f}" if self.name in ("entropy", "unseen") else f"{self.value:,.0f}"
        if self.name == "fix":
            value = "yes" if self.value else "no"
        return f"{self.label} {value} ({self.contribution:+.2f})"


@dataclass(frozen=True)
class Assessment:
    """The model's read of one change."""

    score: float  # probability the change induces a defect, 0..1
    level: RiskLevel
    confidence: float
    drivers: list[Driver]  # every term, largest contribution first


@dataclass(frozen=True)
class Coefficients:
    """A fitted model: the committed data the product scores with."""

    intercept: float
    weights: dict[str, float]
    means: dict[str, float]
    scales: dict[str, float]
    medium_at: float
    high_at: float
    meta: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Coefficients:
        terms = data["terms"]
        missing = set(TERM_NAMES) - set(terms)
        if missing:
            raise ValueError(f"coefficients lack the terms {sorted(missing)}")
        return cls(
            intercept=float(data["intercept"]),
            weights={n: float(terms[n]["weight"]) for n in TERM_NAMES},
            means={n: float(terms[n]["mean"]) for n in TERM_NAMES},
            scales={n: float(terms[n]["scale"]) or 1.0 for n in TERM_NAMES},
            medium_at=float(data["thresholds"]["medium"]),
            high_at=float(data["thresholds"]["high"]),
            meta={k: v for k, v in data.items() if k not in ("terms", "intercept", "thresholds")},
        )


@cache
def fitted() -> Coefficients:
    """The committed coefficients (`coefficients.json` beside this module)."""
    text = resources.files("flowlens.risk").joinpath("coefficients.json").read_text("utf-8")
    return Coefficients.from_json(json.loads(text))


def level_of(score: float, c: Coefficients) -> RiskLevel:
    return "high" if score >= c.high_at else "medium" if score >= c.medium_at else "low"


def assess(features: Features, c: Coefficients | None = None, *, coverage: float = 1.0
           ) -> Assessment:  # fmt: skip
    """Score a change. `coverage` (0..1) is how much of the change the model saw: 1 with the
    file list, less with totals only; it scales the confidence."""
    c = c or fitted()
    raw = features.as_dict()
    drivers = []
    logit = c.intercept
    for name, x in zip(TERM_NAMES, transformed(features), strict=True):
        part = c.weights[name] * (x - c.means[name]) / c.scales[name]
        logit += part
        drivers.append(Driver(name, TERMS[name][1], raw[name], part))
    score = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))
    drivers.sort(key=lambda d: (-d.contribution, d.name))
    # The model's own probability that its call (defect-inducing at or above "high", else
    # not) is right, scaled by how much of the change it saw.
    call_right = score if score >= c.high_at else 1.0 - score
    return Assessment(
        score=score,
        level=level_of(score, c),
        confidence=round(max(0.0, min(1.0, call_right * coverage)), 2),
        drivers=drivers,
    )
