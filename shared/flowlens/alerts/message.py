"""What an alert says: built from a stored build or insight row, rendered per channel (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote


def format_duration(seconds: float | None) -> str:
    """3725.0 -> '1h 2m 5s'; unknown -> 'unknown'."""
    if seconds is None:
        return "unknown"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


# Slack refuses a section block whose text is longer (invalid_blocks, a permanent failure).
SLACK_SECTION_MAX = 3000


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


LINK_MAX = 1000  # longer links are left out: the section must fit SLACK_SECTION_MAX

# Percent-encoded, a URL has no whitespace, backslash, `|`, `<`, `>` or non-ASCII left.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
# scheme://host[:port] and then nothing or a path, query or fragment. No `user@` part and no
# `%` in the authority: the host this names is the host a browser goes to.
_WEB_URL = re.compile(
    r"(?i)https?://(?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)*\.?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?"
    r"(?:[/?#].*)?"
)


def web_link(*candidates: Any) -> str | None:
    """The first candidate that is an http(s) URL with a plain host, percent-encoded, of at
    most LINK_MAX characters (a CI report's or a commit status's URL is anyone's text; the
    PR's or repository's is the fallback)."""
    for url in candidates:
        if not isinstance(url, str):
            continue
        safe = quote(url.strip(), safe=_URL_SAFE)
        if len(safe) <= LINK_MAX and _WEB_URL.fullmatch(safe):
            return safe
    return None


def link_host(url: str) -> str | None:
    """The lower-case host a web_link URL opens (None for anything else)."""
    match = _WEB_URL.fullmatch(url)
    return match.group("host").lower().rstrip(".") if match else None


def link_label(url: str) -> str:
    """What a link says: the host it really opens, whoever supplied the URL."""
    return f"Open on {link_host(url)}"


def _slack_link(url: str) -> str:
    """A URL fit for `<url|label>`: nothing in it can close the link or start a mention."""
    return _slack_escape(quote(url, safe=_URL_SAFE))


def _fit(text: str, limit: int) -> str:
    """At most `limit` characters, cut with an ellipsis and never inside an &entity;."""
    if len(text) <= limit:
        return text
    if limit < 1:
        return ""
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


@dataclass(frozen=True)
class Alert:
    """One alert, independent of the channel that carries it."""

    kind: str  # build_failed | high_risk
    headline: str
    repository: str
    link: str | None
    # (label, value) lines every channel shows, in order.
    facts: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    detail: str | None = None

    def text(self) -> str:
        """Plain text: the headline, one 'Label: value' line per fact, the link."""
        lines = [self.headline, ""]
        lines += [f"{label}: {value}" for label, value in self.facts]
        if self.detail:
            lines += ["", self.detail]
        link = web_link(self.link)
        if link:
            lines += ["", f"Link: {link}"]
        return "\n".join(lines)

    def email_subject(self) -> str:
        """A subject line (no newlines: header injection is not possible from PR text)."""
        subject = f"[FlowLens] {self.headline}"
        return " ".join(subject.split())[:200]

    def slack_payload(self) -> dict[str, Any]:
        """An incoming-webhook body: a fallback `text` and one section block."""
        lines = [f"*{_slack_escape(self.headline)}*"]
        lines += [
            f"*{_slack_escape(label)}:* {_slack_escape(value)}" for label, value in self.facts
        ]
        if self.detail:
            lines.append(_slack_escape(self.detail))
        link = web_link(self.link)
        tail = f"\n<{_slack_link(link)}|{_slack_escape(link_label(link))}>" if link else ""
        body = _fit("\n".join(lines), SLACK_SECTION_MAX - len(tail)) + tail
        return {
            "text": _slack_escape(self.headline),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": body}}],
        }


def _short(sha: str | None) -> str:
    return sha[:7] if sha else "unknown"


def build_alert(row: dict[str, Any]) -> Alert:
    """The alert of a failed build row (build_alert_subjects)."""
    repository = str(row["repository"])
    workflow = str(row.get("workflow_name") or row.get("provider") or "build")
    where: tuple[str, str]
    if row.get("pr_number") is not None:
        title = f" {row['pr_title']}" if row.get("pr_title") else ""
        where = ("Pull request", f"#{row['pr_number']}{title}")
        headline_where = f"#{row['pr_number']}"
    else:
        where = ("Branch", str(row.get("branch") or "unknown"))
        headline_where = str(row.get("branch") or "")
    facts: list[tuple[str, str]] = [("Repository", repository), where]
    if row.get("pr_number") is not None and row.get("branch"):
        facts.append(("Branch", str(row["branch"])))
    facts += [
        ("Commit", _short(row.get("commit_sha"))),
        ("Workflow", workflow),
        ("Conclusion", str(row.get("conclusion") or row.get("status") or "failed")),
        ("Duration", format_duration(row.get("duration_seconds"))),
    ]
    if row.get("triggered_by"):
        facts.append(("Triggered by", str(row["triggered_by"])))
    link = web_link(row.get("url"), row.get("pr_url"), row.get("repository_url"))
    headline = f"Build failed: {repository} {headline_where} {workflow}".replace("  ", " ")
    return Alert(
        kind="build_failed",
        headline=headline.strip(),
        repository=repository,
        link=link,
        facts=tuple(facts),
    )


def insight_alert(row: dict[str, Any]) -> Alert:
    """The alert of a high-risk insight row (insight_alert_subjects)."""
    repository = str(row["repository"])
    title = f" {row['pr_title']}" if row.get("pr_title") else ""
    facts: list[tuple[str, str]] = [
        ("Repository", repository),
        ("Pull request", f"#{row['pr_number']}{title}"),
    ]
    if row.get("branch"):
        facts.append(("Branch", str(row["branch"])))
    facts += [
        ("Commit", _short(row.get("commit_sha"))),
        ("Risk", f"{row.get('risk_level')} (confidence {float(row['confidence_score']):.2f})"),
        ("Model", str(row.get("model") or "")),
    ]
    detail = str(row.get("summary") or "")
    if row.get("recommendation"):
        detail += f"\nRecommendation: {row['recommendation']}"
    link = web_link(row.get("pr_url"), row.get("repository_url"))
    return Alert(
        kind="high_risk",
        headline=f"High-risk change: {repository} #{row['pr_number']}",
        repository=repository,
        link=link,
        facts=tuple(facts),
        detail=detail.strip() or None,
    )
