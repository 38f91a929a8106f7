"""Pick the analyser the settings ask for."""

from __future__ import annotations

from flowlens.insights.builtin import RiskModelAnalyser
from flowlens.insights.models import Analyser
from flowlens.settings import Settings


def make_analyser(settings: Settings) -> Analyser:
    """Gemini when GEMINI_API_KEY is set, otherwise the offline risk model."""
    api_key = settings.secret("gemini_api_key")
    if api_key:
        # Imported here so deployables without a key never load the SDK.
        from flowlens.insights.gemini import GeminiAnalyser

        return GeminiAnalyser(
            api_key,
            settings.gemini_model,
            timeout_seconds=settings.gemini_timeout_seconds,
            max_attempts=settings.gemini_max_attempts,
        )
    return RiskModelAnalyser()
