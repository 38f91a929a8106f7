"""Alerts on failed builds (and high-risk insights): Slack, SMTP or SES, one per subject+channel."""

from flowlens.alerts.channels import Channel, ChannelError, SesChannel, SlackChannel, SmtpChannel
from flowlens.alerts.config import AlertConfig, build_channels
from flowlens.alerts.dispatch import AlertDispatcher, AlertSummary
from flowlens.alerts.message import Alert, build_alert, insight_alert

__all__ = [
    "Alert",
    "AlertConfig",
    "AlertDispatcher",
    "AlertSummary",
    "Channel",
    "ChannelError",
    "SesChannel",
    "SlackChannel",
    "SmtpChannel",
    "build_alert",
    "build_channels",
    "insight_alert",
]
