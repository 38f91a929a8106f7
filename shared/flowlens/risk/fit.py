"""Fitting the risk model offline (needs the `fit` extra: numpy and scikit-learn).

Used by `scripts/fit_risk_model.py` (which writes `coefficients.json`) and `bench/risk.py`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flowlens.risk.features import FileLines, measure
from flowlens.risk.history import MemoryHistory
from flowlens.risk.model import TERM_NAMES, TERMS, transformed
from flowlens.risk.replay import Commit, RepositoryIds, observe

# The data set's year strata: 2003 + floor((t - 2003-01-01 00:00 -05:00) / 365.25 days).
_EPOCH = datetime(2003, 1, 1, tzinfo=timezone(timedelta(hours=-5)))


def stratum_year(at: datetime) -> int:
    return 2003 + math.floor((at - _EPOCH).total_seconds() / (365.25 * 86400))


@dataclass(frozen=True)
class Row:
    """One labelled commit with its model inputs."""

    project: str
    year: int
    label: int
    la: int
    x: list[float]


def rows(stream: Iterable[Commit]) -> list[Row]:
    """Replay a labelled stream through the product's history and features (labels read
    here only to keep them beside the inputs)."""
    store = MemoryHistory()
    ids = RepositoryIds()

    async def run() -> list[Row]:
        out: list[Row] = []
        for c in stream:
            files = [FileLines(f["path"], f.get("additions", 0), f.get("deletions", 0))
                     for f in c.files]  # fmt: skip
            paths = [f.path for f in files]
            history = await observe(store, ids(c.repository), c.sha, c.author, paths,
                                    c.committed_at)  # fmt: skip
            label = c.raw.get("label")
            if label not in (0, 1):
                continue
            feats = measure(files, c.title, history, c.committed_at,
                            additions=c.additions, deletions=c.deletions)  # fmt: skip
            out.append(Row(c.repository.split("/")[-1], stratum_year(c.committed_at), int(label),
                           feats.la, transformed(feats)))  # fmt: skip
        return out

    return asyncio.run(run())


def fit(train: list[Row], *, c_reg: float = 1.0) -> dict[str, Any]:
    """A pooled L2 logistic regression on standardised inputs -> the coefficients' JSON."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([r.x for r in train], dtype=float)
    y = np.array([r.label for r in train])
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales[scales == 0] = 1.0
    z = (x - means) / scales
    model = LogisticRegression(C=c_reg, max_iter=1000, solver="lbfgs")
    model.fit(z, y)
    return {
        "intercept": float(model.intercept_[0]),
        "terms": {
            name: {"transform": TERMS[name][0], "mean": float(means[i]),
                   "scale": float(scales[i]), "weight": float(model.coef_[0][i])}
            for i, name in enumerate(TERM_NAMES)
        },
    }  # fmt: skip


STRENGTHS = (0.01, 0.1, 1.0)
HIGH_QUANTILE = 0.90
MEDIUM_QUANTILE = 0.60


def mean_project_auc(coefficients: dict[str, Any], data: list[Row]) -> float:
    """The mean over projects of the ROC AUC of the model's scores."""
    values = scores(coefficients, data)
    per = []
    for project in sorted({r.project for r in data}):
        idx = [i for i, r in enumerate(data) if r.project == project]
        a = auc([data[i].label for i in idx], [values[i] for i in idx])
        if a is not None:
            per.append(a)
    return sum(per) / len(per)


def fit_selected(data: list[Row]) -> dict[str, Any]:
    """The product's fitting procedure: the L2 strength chosen on the two years before the
    newest two (fit on the years before them), then a fit on all `data`, with the level cuts
    at the HIGH_QUANTILE and MEDIUM_QUANTILE of its fitted scores."""
    last = max(r.year for r in data)
    train = [r for r in data if r.year <= last - 4]
    check = [r for r in data if last - 4 < r.year <= last - 2]
    chosen = max(STRENGTHS, key=lambda c: (round(mean_project_auc(fit(train, c_reg=c), check),
                                                 4), -c))  # fmt: skip
    model = fit(data, c_reg=chosen)
    fitted = scores(model, data)
    model["thresholds"] = {
        "medium": round(quantile(fitted, MEDIUM_QUANTILE), 6),
        "high": round(quantile(fitted, HIGH_QUANTILE), 6),
    }
    model["fitted_on"] = {
        "labelled_commits": len(data),
        "buggy": sum(r.label for r in data),
        "l2_strength_c": chosen,
        "quantiles": {"medium": MEDIUM_QUANTILE, "high": HIGH_QUANTILE},
    }
    return model


def scores(coefficients: dict[str, Any], data: list[Row]) -> list[float]:
    """The model's probability for each row (the same formula as flowlens.risk.model)."""
    out = []
    terms = coefficients["terms"]
    for r in data:
        logit = coefficients["intercept"] + sum(
            terms[n]["weight"] * (v - terms[n]["mean"]) / (terms[n]["scale"] or 1.0)
            for n, v in zip(TERM_NAMES, r.x, strict=True)
        )
        out.append(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit)))))
    return out


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def auc(labels: list[int], values: list[float]) -> float | None:
    """ROC AUC (ties count half); None without both classes."""
    from sklearn.metrics import roc_auc_score

    if len(set(labels)) < 2:
        return None
    return float(roc_auc_score(labels, values))
