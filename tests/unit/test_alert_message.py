"""What a Slack alert says when the stored text is hostile or long."""

from __future__ import annotations

from typing import Any

import pytest

from flowlens.alerts.channels import SesChannel, email_message
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
    assert text.endswith("|Open on ci.example>")
    assert "&lt;b&gt; &amp; things" in text  # the title is escaped as before


def test_only_web_links_are_linked() -> None:
    text = section(build_alert(build_row(url="javascript:alert(1)", pr_url=None)).slack_payload())
    assert "Open on" not in text and "javascript" not in text
    # The PR's link stands in for a build link that cannot be used.
    pr = "https://github.com/acme/widgets/pull/9"
    for url in ("javascript:alert(1)", "https://ci.example/?" + "a&" * 1000):
        text = section(build_alert(build_row(url=url, pr_url=pr)).slack_payload())
        assert text.endswith(f"<{pr}|Open on github.com>") and len(text) <= SLACK_SECTION_MAX


def test_a_long_insight_fits_one_slack_section_and_keeps_its_link() -> None:
    row = {
        "repository": "acme/widgets", "pr_number": 9, "pr_title": "Big change",
        "commit_sha": "b" * 40, "risk_level": "high", "confidence_score": 0.9,
        "model": "gemini-2.5-flash", "summary": "<&>" * 1333, "recommendation": "r" * 4000,
        "pr_url": "https://github.com/acme/widgets/pull/9",
    }  # fmt: skip
    text = section(insight_alert(row).slack_payload())
    assert len(text) <= SLACK_SECTION_MAX
    assert text.endswith("<https://github.com/acme/widgets/pull/9|Open on github.com>")
    body = text.rsplit("\n", 1)[0]
    assert body.endswith("…") and body[:-1].endswith(";")  # never cut inside &amp;


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("https://github.com/acme/widgets/actions/runs/9", "Open on github.com"),
        ("https://GitHub.com./acme/widgets/actions/runs/9", "Open on github.com"),
        ("https://github.acme.corp/acme/widgets/pull/9", "Open on github.acme.corp"),
        ("https://ci.example.com/job/9", "Open on ci.example.com"),
        ("http://github.com.evil.example/run/9", "Open on github.com.evil.example"),
        ("https://evil.example:8443/github.com/run/9", "Open on evil.example"),
    ],
)
def test_a_link_is_labelled_by_the_host_it_opens(url: str, label: str) -> None:
    """The CI path's `url` is whatever a CI_WRITE_KEY holder sends: the label may not vouch
    for GitHub unless the link really goes there."""
    text = section(build_alert(build_row(url=url)).slack_payload())
    assert text.endswith(f"|{label}>")
    assert text.count("Open on") == 1


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com@evil.example/run/9",  # userinfo: the host is evil.example
        "https://github.com:443@evil.example/",
        "https://evil.example\\@github.com/",  # a browser's host is evil.example
        "https://github.com%2F@evil.example/",
        "https://github.com\t.evil.example/",  # a browser drops the tab
        "https://g\u0456thub.com/acme",  # Cyrillic i
        "https:evil.example/run/9",
        "https:///evil.example/run/9",
        "ftp://github.com/acme",
        "data:text/html,<a href=https://github.com>",
    ],
)
def test_a_url_whose_host_is_in_doubt_is_not_linked(url: str) -> None:
    pr = "https://github.com/acme/widgets/pull/9"
    text = section(build_alert(build_row(url=url, pr_url=pr)).slack_payload())
    assert text.endswith(f"\n<{pr}|Open on github.com>")  # the PR's link stands in
    assert "evil" not in text and "\u0456" not in text
    alone = build_alert(build_row(url=url, pr_url=None))
    assert alone.link is None and "Link:" not in alone.text()


def test_email_is_plain_text_with_the_link_on_one_line() -> None:
    """Email carries no HTML (nothing to escape); a URL cannot add lines to the body."""
    url = "https://ci.example.com/run/9\n\nUrgent: reset your password at https://evil.example"
    alert = build_alert(build_row(url=url))
    message = email_message(alert, "flowlens@example.com", ["dev@example.com"])
    assert [part.get_content_type() for part in message.walk()] == ["text/plain"]
    body = message.get_content()
    (link,) = [line for line in body.splitlines() if line.startswith("Link: ")]
    assert link.startswith("Link: https://ci.example.com/run/9%0A%0AUrgent:%20reset")
    assert not any(line.startswith("Urgent") for line in body.splitlines())


def test_ses_sends_the_same_plain_text_and_no_html() -> None:
    sent: dict[str, Any] = {}

    class Client:
        def send_email(self, **kwargs: Any) -> None:
            sent.update(kwargs)

    channel = SesChannel("flowlens@example.com", ["dev@example.com"], region="eu-west-1")
    channel._client = Client()
    alert = build_alert(build_row(url="https://ci.example.com/run/9"))
    channel._send(alert)
    assert set(sent["Message"]["Body"]) == {"Text"}
    assert sent["Message"]["Body"]["Text"]["Data"] == alert.text()
