"""What a Slack alert says when the stored text is hostile or long."""

from __future__ import annotations

from typing import Any

from flowlens.alerts.message import SLACK_SECTION_MAX, build_alert, insight_alert


def build_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "repository": "acme/widgets", "workflow_name": "CI", "provider": "ci", "pr_number": 9,
        "pr_title": "Fix <b> & things", "branch": "main", "commit_sha": "a" * 40,
        "conclusion": "failure", "duration_seconds": 61.0, "url": "https://ci.example/run/9",
    }  # fmt: skip
    row.update(changes)
    return row


def section(payload: dict[str, Any]) -> str:
    return str(payload["blocks"][0]["text"]["text"])


def test_a_build_link_cannot_close_itself_or_mention_anyone() -> None:
    """A CI report's or commit status's URL is anyone's text."""
    hostile = "https://ci.example/run/9|details> <!channel> <https://evil.example|Click"
    text = section(build_alert(build_row(url=hostile)).slack_payload())
    assert "<!channel>" not in text and "evil.example|" not in text
    assert text.count("<") == 1 and text.count("|") == 1  # the one link, its one label
    assert text.endswith("|Open on GitHub>")
    assert "&lt;b&gt; &amp; things" in text  # the title is escaped as before


def test_only_web_links_are_linked() -> None:
    text = section(build_alert(build_row(url="javascript:alert(1)", pr_url=None)).slack_payload())
    assert "Open on GitHub" not in text and "javascript" not in text
    # The PR's link stands in for a build link that cannot be used.
    pr = "https://github.com/acme/widgets/pull/9"
    for url in ("javascript:alert(1)", "https://ci.example/?" + "a&" * 1000):
        text = section(build_alert(build_row(url=url, pr_url=pr)).slack_payload())
        assert text.endswith(f"<{pr}|Open on GitHub>") and len(text) <= SLACK_SECTION_MAX


def test_a_long_insight_fits_one_slack_section_and_keeps_its_link() -> None:
    row = {
        "repository": "acme/widgets", "pr_number": 9, "pr_title": "Big change",
        "commit_sha": "b" * 40, "risk_level": "high", "confidence_score": 0.9,
        "model": "gemini-2.5-flash", "summary": "<&>" * 1333, "recommendation": "r" * 4000,
        "pr_url": "https://github.com/acme/widgets/pull/9",
    }  # fmt: skip
    text = section(insight_alert(row).slack_payload())
    assert len(text) <= SLACK_SECTION_MAX
    assert text.endswith("<https://github.com/acme/widgets/pull/9|Open on GitHub>")
    body = text.rsplit("\n", 1)[0]
    assert body.endswith("…") and body[:-1].endswith(";")  # never cut inside &amp;
