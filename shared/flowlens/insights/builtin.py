"""The built-in analyser: the statistical risk model (flowlens.risk) with its reasons.

The level, the probability, the confidence and the drivers all come from the model
(docs/RISK_MODEL.md). The sensitive areas a change touches and its CI state shape the advice
and the key changes, not the score: the model was fitted without them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flowlens.insights.models import MAX_DRIVERS, ChangeContext, Driver, Insight
from flowlens.insights.paths import CATEGORIES, classify_path, key_changes, plural
from flowlens.risk.features import FileLines, measure
from flowlens.risk.model import Assessment, Coefficients, assess, fitted

NAME = "risk-model"
# How much of a change the model sees with only the PR's totals (no file list): the spread,
# history and directory terms fall back to their no-information values.
TOTALS_ONLY_COVERAGE = 0.7
# A driver worth naming moves the log-odds by at least this much.
NOTABLE = 0.1


def top_drivers(a: Assessment) -> list[Driver]:
    """The terms that raise the score most (or, for a change that raises nothing, that lower
    it least), as stored and shown."""
    return [
        Driver(feature=d.name, label=d.label, value=round(d.value, 3),
               contribution=round(d.contribution, 3))
        for d in a.drivers[:MAX_DRIVERS]
    ]  # fmt: skip


def model_read(ctx: ChangeContext, coefficients: Coefficients | None = None) -> Assessment:
    """The model's assessment of a change (pure: the history is in the context)."""
    files = [FileLines(f.path, f.additions, f.deletions) for f in ctx.files]
    at = ctx.at or datetime.now(UTC)
    features = measure(files, ctx.title, ctx.history, at,
                       additions=ctx.additions, deletions=ctx.deletions)  # fmt: skip
    return assess(features, coefficients,
                  coverage=1.0 if files else TOTALS_ONLY_COVERAGE)  # fmt: skip


def describe_read(a: Assessment, coefficients: Coefficients | None = None) -> str:
    """`probability 0.63 (high at 0.58 or more); drivers: lines added 420 (+0.91), ...`."""
    c = coefficients or fitted()
    named = [d for d in a.drivers[:3] if d.contribution >= NOTABLE] or a.drivers[:1]
    cut = {"high": f"high at {c.high_at:.2f} or more",
           "medium": f"medium from {c.medium_at:.2f}, high from {c.high_at:.2f}",
           "low": f"low below {c.medium_at:.2f}"}[a.level]  # fmt: skip
    return (f"defect probability {a.score:.2f} ({cut}); top drivers: "
            + ", ".join(d.describe() for d in named))  # fmt: skip


class RiskModelAnalyser:
    """Deterministic analyser used when no Gemini key is configured."""

    name = NAME

    def __init__(self, coefficients: Coefficients | None = None) -> None:
        self.coefficients = coefficients

    async def analyse(self, ctx: ChangeContext) -> Insight:
        """Score the change; never fails and never touches the network."""
        return self.assess(ctx)

    async def aclose(self) -> None:
        """Nothing to release; here so every analyser can be closed the same way."""

    def assess(self, ctx: ChangeContext) -> Insight:
        """The synchronous core of analyse()."""
        a = model_read(ctx, self.coefficients)
        cats = {f.path: classify_path(f.path) for f in ctx.files}
        touched = [c for c in CATEGORIES if any(c in cats[f.path] for f in ctx.files)]
        size = f"{plural(ctx.additions, 'line')} added, {plural(ctx.deletions, 'line')} deleted"
        if ctx.files:
            size += f" in {plural(len(ctx.files), 'file')}"
        notes = [size]
        notes += [f"touches {CATEGORIES[c]}" for c in touched]
        notes.append({"buildFailed": "CI build failed", "buildPassed": "CI build passed",
                      "building": "CI build still running"}.get(ctx.ci_state,
                                                                "CI not reported yet"))  # fmt: skip
        summary = (f"{a.level.capitalize()} risk: {describe_read(a, self.coefficients)}. "
                   + "; ".join(notes) + ".")  # fmt: skip
        return Insight(
            risk_level=a.level,
            summary=summary,
            recommendation=_advice(ctx, a, touched),
            key_changes=key_changes(ctx.files, cats),
            confidence_score=a.confidence,
            model=NAME,
            risk_score=round(a.score, 4),
            drivers=top_drivers(a),
        )


def _advice(ctx: ChangeContext, a: Assessment, touched: list[str]) -> str:
    advice: list[str] = []
    if ctx.ci_state == "buildFailed":
        advice.append("Fix the failing CI build before merging.")
    if a.level == "high":
        advice.append("Changes like this one induce defects most often: review it closely "
                      "and test the changed paths.")  # fmt: skip
    drivers = {d.name for d in a.drivers[:3] if d.contribution >= NOTABLE}
    if drivers & {"la", "nf", "nd", "ns"} and a.level != "low":
        advice.append("Consider splitting it into smaller pull requests.")
    if touched:
        advice.append(f"Ask an owner of the {', '.join(CATEGORIES[c] for c in touched)} "
                      "to review those files.")  # fmt: skip
    if "migrations" in touched:
        advice.append("Check the migration is reversible and safe on a live database.")
    return " ".join(advice) or "Routine review is enough."
