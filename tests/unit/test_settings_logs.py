"""Typed settings and Cloud Logging-ready log lines."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from flowlens import logs
from flowlens.settings import ApiSettings, ConfigError, IngestSettings, PollerSettings, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_missing_required_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="DATABASE_URL, GITHUB_WEBHOOK_SECRET"):
        IngestSettings.from_env()
    monkeypatch.setenv("DATABASE_URL", "postgresql://x")
    with pytest.raises(ConfigError, match="missing required setting: GITHUB_WEBHOOK_SECRET"):
        IngestSettings.from_env()
    assert PollerSettings.from_env().dsn == "postgresql://x"
    assert ApiSettings.from_env().gemini_model == "gemini-2.5-flash"


def test_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLL_INTERVAL_SECONDS", "soon")
    with pytest.raises(ConfigError, match="POLL_INTERVAL_SECONDS"):
        Settings.from_env()


def test_secrets_are_hidden_and_lists_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKENS", "a, b,,c")
    monkeypatch.setenv("GEMINI_API_KEY", "very-secret")
    monkeypatch.setenv("CORS_ORIGINS", "https://x.example, https://y.example")
    settings = Settings.from_env()
    assert settings.api_token_list == ["a", "b", "c"]
    assert settings.cors_origin_list == ["https://x.example", "https://y.example"]
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings.model_dump())


def test_secrets_lose_the_newline_a_secret_manager_value_often_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://x/y\n")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "s3cret\n")
    monkeypatch.setenv("ALERT_SLACK_WEBHOOK_URL", " https://hooks.slack.com/services/T/B/x\r\n")
    ingest = IngestSettings.from_env()
    assert ingest.secret("github_webhook_secret") == "s3cret"
    assert ingest.dsn == "postgresql://x/y"
    poller = PollerSettings.from_env()
    assert poller.secret("alert_slack_webhook_url") == "https://hooks.slack.com/services/T/B/x"


def test_every_contract_setting_exists() -> None:
    names = {
        "DATABASE_URL", "GITHUB_WEBHOOK_SECRET", "CI_WRITE_KEY", "GEMINI_API_KEY", "GEMINI_MODEL",
        "GITHUB_TOKEN", "GITHUB_API_URL", "POLL_INTERVAL_SECONDS", "POLL_BUDGET_SECONDS",
        "AI_CONCURRENCY", "API_TOKENS", "CORS_ORIGINS", "INGEST_PORT", "API_PORT",
    }  # fmt: skip
    assert {n.lower() for n in names} <= set(Settings.model_fields)


def test_function_refuses_to_start_without_its_settings() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    proc = subprocess.run(
        [sys.executable, "-c", "import runpy; runpy.run_path('functions/ingest/main.py')"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "missing required settings: DATABASE_URL, GITHUB_WEBHOOK_SECRET" in proc.stderr


def test_json_lines_carry_severity_component_context_and_trace() -> None:
    formatter = logs.JsonFormatter()
    make = logging.getLogRecordFactory()
    with logs.bind(component="ingest", delivery="d-1", repository="o/r", pr=5,
                   trace=logs.trace_from_header("abc123/1;o=1", project="proj")):  # fmt: skip
        record = make("flowlens.ingest", logging.WARNING, __file__, 1, "hello %s", ("x",), None)
    # Formatted later, elsewhere: the fields bound when it was logged still come along.
    line = json.loads(formatter.format(record))
    assert line["severity"] == "WARNING" and line["message"] == "hello x"
    assert line["component"] == "ingest" and line["delivery"] == "d-1"
    assert line["repository"] == "o/r" and line["pr"] == 5
    assert line["logging.googleapis.com/trace"] == "projects/proj/traces/abc123"
    # Fields outside the allowed keys (a payload, a secret) are never attached.
    with logs.bind(payload="{...}", secret="s3cret"):
        record = make("flowlens.ingest", logging.INFO, __file__, 1, "x", (), None)
    line = json.loads(formatter.format(record))
    assert "payload" not in line and "secret" not in line


def test_text_lines_are_readable() -> None:
    with logs.bind(component="poller", pr=3):
        record = logging.getLogRecordFactory()(
            "flowlens.poller", logging.INFO, __file__, 1, "scan", (), None
        )
    text = logs.TextFormatter().format(record)
    assert "[poller] scan" in text and "pr=3" in text


@pytest.mark.parametrize(
    ("value", "origins"),
    [("https://a.example/, http://localhost:3000", ["https://a.example", "http://localhost:3000"]),
     ("*", ["*"]), ("", []), ("http://[::1]:5173, null", ["http://[::1]:5173", "null"]),
     ("https://App.Example.com:8443", ["https://app.example.com:8443"])],
)  # fmt: skip
def test_cors_origins_lose_a_trailing_slash(
    value: str, origins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://h/x")
    monkeypatch.setenv("CORS_ORIGINS", value)
    assert ApiSettings.from_env().cors_origin_list == origins


@pytest.mark.parametrize(
    "value",
    [
        '["https://a.example"]',
        "https://a.example https://b.example",
        "a.example",
        "https://u@a.example",
        "https://a.example?x",
        "https://a.example:99999",
    ],
)
def test_cors_origins_that_no_browser_sends_are_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://h/x")
    monkeypatch.setenv("CORS_ORIGINS", value)
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        ApiSettings.from_env()


@pytest.mark.parametrize("level", ["warn", "WARNING", "fatal", "debug"])
def test_log_levels_python_knows_are_taken(level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://h/x")
    monkeypatch.setenv("LOG_LEVEL", level)
    assert Settings.from_env().log_level == level


def test_github_app_settings_go_together_and_choose_the_write_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY", "GITHUB_TOKEN", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://x")
    assert PollerSettings.from_env().write_back is None  # no credentials: nothing posted
    monkeypatch.setenv("GITHUB_APP_ID", "")  # Terraform's "unset"
    assert PollerSettings.from_env().github_app_id is None
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    assert PollerSettings.from_env().write_back == "status"
    monkeypatch.setenv("GITHUB_APP_ID", "123")
    with pytest.raises(ConfigError, match="GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY go together"):
        PollerSettings.from_env()
    # Ingest gets the id alone (Terraform gives it no key): it only recognises its own checks.
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "s")
    assert IngestSettings.from_env().github_app_id == 123
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----\n...")
    settings = PollerSettings.from_env()
    assert settings.app_mode and settings.write_back == "check_run"  # the App wins
    monkeypatch.setenv("GITHUB_API_URL", "")
    assert PollerSettings.from_env().write_back is None
    monkeypatch.setenv("DEPLOY_WORKFLOWS", "deploy(")
    with pytest.raises(ConfigError, match="DEPLOY_WORKFLOWS is not a regular expression"):
        PollerSettings.from_env()
    monkeypatch.delenv("DEPLOY_WORKFLOWS")
    monkeypatch.setenv("CHECK_FAIL_AT", "low")
    with pytest.raises(ConfigError, match="CHECK_FAIL_AT"):
        PollerSettings.from_env()
