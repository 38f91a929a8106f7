"""Risk insights per pull-request commit: analysers, their models, the GitHub files client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowlens.github.rest import GitHubError
from flowlens.insights.builtin import RiskModelAnalyser
from flowlens.insights.factory import make_analyser
from flowlens.insights.github_files import GitHubFilesClient
from flowlens.insights.models import (
    Analyser,
    AnalysisError,
    ChangeContext,
    FileChange,
    Insight,
    RiskLevel,
    ground_key_changes,
)

if TYPE_CHECKING:
    from flowlens.insights.gemini import GeminiAnalyser

__all__ = [
    "Analyser",
    "AnalysisError",
    "ChangeContext",
    "FileChange",
    "GeminiAnalyser",
    "GitHubError",
    "GitHubFilesClient",
    "Insight",
    "RiskLevel",
    "RiskModelAnalyser",
    "ground_key_changes",
    "make_analyser",
]


def __getattr__(name: str) -> Any:
    # GeminiAnalyser pulls in the google-genai SDK; load it only when asked for.
    if name == "GeminiAnalyser":
        from flowlens.insights.gemini import GeminiAnalyser

        return GeminiAnalyser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
