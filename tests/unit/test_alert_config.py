"""ALERT_* checks: a name FlowLens does not know switches alerts off instead of silencing them."""

from __future__ import annotations

import pytest

from flowlens.alerts.config import AlertConfig
from flowlens.settings import ConfigError, PollerSettings


def settings(**changes: str) -> PollerSettings:
    return PollerSettings(database_url="postgresql://h/x", alert_channels="slack",
                          alert_slack_webhook_url="https://hooks.example/x", **changes)  # fmt: skip


@pytest.mark.parametrize("providers", ["github-actions", "circleci", "ci,jenkins"])
def test_an_unknown_build_provider_is_refused(providers: str) -> None:
    with pytest.raises(ConfigError, match="ALERT_BUILD_PROVIDERS: unknown provider"):
        AlertConfig.from_settings(settings(alert_build_providers=providers))


def test_build_providers_ignore_letter_case() -> None:
    config = AlertConfig.from_settings(settings(alert_build_providers="GitHub_Actions, CI,ci"))
    assert config.build_providers == ("github_actions", "ci")
