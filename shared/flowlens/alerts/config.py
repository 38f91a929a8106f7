"""Alert settings, checked once, and the channels they describe."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flowlens.alerts.channels import Channel, SesChannel, SlackChannel, SmtpChannel
from flowlens.settings import ConfigError, Settings

log = logging.getLogger("flowlens.alerts")

CHANNELS = ("slack", "email")
EVENTS = ("build_failed", "high_risk")
# The builds table's providers (flowlens.github.parse and the CI path).
PROVIDERS = ("github_actions", "github_actions_job", "check_suite", "check_run", "status", "ci")


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@dataclass(frozen=True)
class AlertConfig:
    """What the alert pass does: which channels, about which events, how persistently."""

    channels: tuple[str, ...]
    on_build_failed: bool
    on_high_risk: bool
    build_providers: tuple[str, ...]
    window_seconds: float
    max_attempts: int
    retry_seconds: float
    interval_seconds: float
    timeout_seconds: float

    @property
    def enabled(self) -> bool:
        """Any channel and any event at all."""
        return bool(self.channels) and (self.on_build_failed or self.on_high_risk)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertConfig:
        """Validate ALERT_*; unknown channel or event names are a ConfigError."""
        channels = _split(settings.alert_channels.lower())
        events = _split(settings.alert_on.lower())
        problems = [f"ALERT_CHANNELS: unknown channel {c!r}" for c in channels if c not in CHANNELS]
        problems += [f"ALERT_ON: unknown event {e!r}" for e in events if e not in EVENTS]
        providers = _split(settings.alert_build_providers.lower())
        known = ", ".join(PROVIDERS)
        problems += [
            f"ALERT_BUILD_PROVIDERS: unknown provider {p!r} (known: {known})"
            for p in providers
            if p not in PROVIDERS
        ]
        if settings.alert_email_transport not in ("smtp", "ses"):
            problems.append("ALERT_EMAIL_TRANSPORT: want smtp or ses")
        if settings.alert_smtp_tls not in ("none", "starttls", "ssl"):
            problems.append("ALERT_SMTP_TLS: want none, starttls or ssl")
        if "slack" in channels and settings.alert_slack_webhook_url is None:
            problems.append("ALERT_CHANNELS lists slack but ALERT_SLACK_WEBHOOK_URL is unset")
        if "email" in channels and not _split(settings.alert_email_to):
            problems.append("ALERT_CHANNELS lists email but ALERT_EMAIL_TO is unset")
        if problems:
            raise ConfigError("invalid alert settings: " + "; ".join(problems))
        return cls(
            channels=tuple(dict.fromkeys(channels)),
            on_build_failed="build_failed" in events,
            on_high_risk="high_risk" in events,
            build_providers=tuple(dict.fromkeys(providers)),
            window_seconds=settings.alert_window_hours * 3600.0,
            max_attempts=settings.alert_max_attempts,
            retry_seconds=settings.alert_retry_seconds,
            interval_seconds=settings.alert_interval_seconds,
            timeout_seconds=settings.alert_timeout_seconds,
        )


def build_channels(settings: Settings, config: AlertConfig) -> list[Channel]:
    """One channel object per configured channel name."""
    channels: list[Channel] = []
    timeout = config.timeout_seconds
    for name in config.channels:
        if name == "slack":
            url = settings.secret("alert_slack_webhook_url") or ""
            channels.append(SlackChannel(url, timeout=timeout))
        elif name == "email":
            recipients = _split(settings.alert_email_to)
            if settings.alert_email_transport == "ses":
                channels.append(
                    SesChannel(
                        settings.alert_email_from,
                        recipients,
                        region=settings.alert_ses_region,
                        timeout=timeout,
                    )
                )
            else:
                channels.append(
                    SmtpChannel(
                        settings.alert_smtp_host,
                        settings.alert_smtp_port,
                        settings.alert_email_from,
                        recipients,
                        tls=settings.alert_smtp_tls,
                        username=settings.alert_smtp_username,
                        password=settings.secret("alert_smtp_password"),
                        timeout=timeout,
                    )
                )
    return channels
