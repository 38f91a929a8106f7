"""Typed settings read from the environment; names match Terraform's env blocks."""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# `*`, `null` (what a sandboxed page sends) or scheme://host[:port], IPv6 hosts in brackets.
_ORIGIN = re.compile(r"\*|null|[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?")


def _origin_ok(origin: str) -> bool:
    match = _ORIGIN.fullmatch(origin)
    return match is not None and int(match.group(2)[1:] if match.group(2) else 0) <= 65535


class ConfigError(RuntimeError):
    """A deployable started without a setting it needs, or with a bad value."""


def _blank_is_none(value: Any) -> Any:
    """An empty variable counts as unset (Terraform passes "" for an unset id)."""
    return None if isinstance(value, str) and not value.strip() else value


_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# The longest sync window (SYNC_SINCE_DAYS, `flowlens sync --since`): ten years.
MAX_SINCE_DAYS = 3650
# Delivery rows are kept at least this long (GitHub redelivers deliveries up to 3 days old).
MIN_EVENT_DAYS = 7
# History and builds are kept at least this long (the metrics' default windows).
MIN_HISTORY_DAYS = 30


class Settings(BaseSettings):
    """Every setting FlowLens reads. Deployables narrow which ones are required."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Which settings this deployable cannot start without (checked by from_env).
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    # Whether this deployable signs as the GitHub App (then GITHUB_APP_ID needs its key).
    USES_APP_KEY: ClassVar[bool] = True
    # Whether this deployable serves the API (and so must not start with a blank API_TOKENS).
    SERVES_API: ClassVar[bool] = False

    database_url: SecretStr | None = None
    github_webhook_secret: SecretStr | None = None
    ci_write_key: SecretStr | None = None
    gemini_api_key: SecretStr | None = None
    gemini_model: str = "gemini-2.5-flash"
    github_token: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    # GitHub App mode (docs/GITHUB_APP.md): the App's id and its private key (PEM).
    github_app_id: Annotated[int | None, BeforeValidator(_blank_is_none)] = Field(
        default=None, ge=1
    )
    github_app_private_key: SecretStr | None = None
    # Where a check or status links to (the dashboard's URL); unset: no link.
    dashboard_url: str = ""
    # The check's quality gate: its conclusion is failure at or above this level.
    check_fail_at: Literal["off", "medium", "high"] = "off"
    # A check still in progress this long after its analysis started is completed neutral.
    check_timeout_seconds: float = Field(default=300.0, gt=0)
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    poll_budget_seconds: float = Field(default=50.0, ge=0)
    # An invocation ends after this many scans in a row found nothing to do (0: never early).
    poll_idle_scans: int = Field(default=2, ge=0)
    # Ingest wakes the poller here when it commits work and none runs (empty: never).
    poller_url: str = ""
    # How a wake-up authenticates: a Cloud Run OIDC identity token, or none (`flowlens dev`).
    wake_auth: Literal["oidc", "none"] = "oidc"
    ai_concurrency: int = Field(default=16, ge=1, le=256)
    api_tokens: SecretStr | None = None
    cors_origins: str = ""
    ingest_port: int = Field(default=8081, ge=1, le=65535)
    api_port: int = Field(default=8000, ge=1, le=65535)
    poller_port: int = Field(default=8082, ge=1, le=65535)
    # DORA's workflow fallback: the deploy workflows' names (a regular expression, any case).
    deploy_workflows: str = "deploy|release"
    # Where `flowlens dev` listens: loopback unless opened (docs/SETTINGS.md).
    dev_host: str = Field(default="127.0.0.1", min_length=1)

    # Operational knobs with safe defaults.
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)
    # Renewed every third of itself while the work runs, so a poller killed mid-run leaves its
    # events to the next scan within LEASE_SECONDS + POLL_INTERVAL_SECONDS (32 s; under 45).
    lease_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    poll_batch_size: int = Field(default=200, ge=1)
    feed_notify: bool = True
    # At most 10 minutes: retention keeps feed rows an hour (flowlens.retention).
    feed_window_seconds: float = Field(default=10.0, gt=0, le=600)
    feed_poll_seconds: float = Field(default=0.25, gt=0)
    ws_queue_size: int = Field(default=256, ge=1)
    # Proxies in front of the API that append to X-Forwarded-For (Cloud Run's front end: 1; the
    # image sets it). The client is the entry they appended; what the client sent is ignored.
    proxy_hops: int = Field(default=0, ge=0, le=5)
    # Longest an API query may run before the database cancels it (a 503 for that request).
    api_statement_timeout_ms: int = Field(default=5000, ge=0)
    # Body bytes one ingest instance holds in flight; beyond it, 503 with Retry-After.
    ingest_body_budget_mb: float = Field(default=128.0, gt=0)
    gemini_timeout_seconds: float = Field(default=60.0, gt=0)
    gemini_max_attempts: int = Field(default=4, ge=1)
    github_patch_max_bytes: int = Field(default=4000, ge=0)
    # Cloud Logging names a trace projects/P/traces/T; Terraform sets it to the project id.
    google_cloud_project: str | None = None
    log_format: str = Field(default="auto", pattern="^(auto|json|text)$")
    log_level: str = Field(
        default="INFO", pattern="(?i)^(DEBUG|INFO|WARN|WARNING|ERROR|FATAL|CRITICAL)$"
    )

    # Alerts (docs/ALERTS.md): sent by the poller's alert pass; no channel listed, no alerts.
    # Checked by flowlens.alerts.AlertConfig: bad values switch alerts off, not the poller.
    alert_channels: str = ""
    alert_on: str = "build_failed"
    alert_build_providers: str = "github_actions,ci,status"
    alert_window_hours: float = Field(default=24.0, gt=0)
    alert_max_attempts: int = Field(default=5, ge=1)
    alert_retry_seconds: float = Field(default=30.0, ge=0)
    alert_interval_seconds: float = Field(default=5.0, gt=0)
    alert_timeout_seconds: float = Field(default=10.0, gt=0)
    alert_slack_webhook_url: SecretStr | None = None
    alert_email_to: str = ""
    alert_email_from: str = "flowlens@localhost"
    alert_email_transport: str = "smtp"
    alert_smtp_host: str = "localhost"
    alert_smtp_port: int = Field(default=587, ge=1, le=65535)
    alert_smtp_username: str | None = None
    alert_smtp_password: SecretStr | None = None
    alert_smtp_tls: str = "starttls"
    alert_ses_region: str | None = None

    # Retention (docs/OPERATIONS.md "Retention"), a poller duty; 0 days keeps for ever.
    raw_payload_days: int = Field(default=30, ge=0, le=MAX_SINCE_DAYS)
    # A delivery's row is its redelivery dedupe: at least a week (GitHub redelivers 3 days).
    raw_event_days: int = Field(default=365, ge=0, le=MAX_SINCE_DAYS)
    history_days: int = Field(default=365, ge=0, le=MAX_SINCE_DAYS)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    retention_batch_size: int = Field(default=1000, ge=1, le=10000)

    # GitHub sync (docs/SYNC.md): `flowlens sync`, and on a schedule when repositories are listed.
    sync_repositories: str = ""
    sync_interval_seconds: float = Field(default=60.0, gt=0)
    sync_since_days: float = Field(default=7.0, gt=0, le=MAX_SINCE_DAYS)
    sync_max_wait_seconds: float = Field(default=300.0, ge=0)

    @classmethod
    def from_env(cls: type[_S], **overrides: Any) -> _S:
        """Load settings; a missing required or invalid value names the variable."""
        try:
            settings = cls(**overrides)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"invalid settings: {problems}") from None
        database_url = settings.secret("database_url")
        if database_url:
            from psycopg.conninfo import conninfo_to_dict

            try:
                params = conninfo_to_dict(database_url)
            except Exception:  # psycopg.ProgrammingError, whose text may quote a password
                raise ConfigError(
                    "invalid settings: DATABASE_URL is neither a postgresql:// URL nor "
                    "libpq key=value pairs"
                ) from None
            # libpq takes these only at connect time, and the pool would retry them for its
            # whole timeout before saying "couldn't get a connection".
            ports = str(params.get("port") or "").split(",")
            if not all(p == "" or (p.isdigit() and 0 < int(p) <= 65535) for p in ports):
                raise ConfigError(
                    f"invalid settings: DATABASE_URL's port {params['port']!r} is not a port"
                )
            sslmode = params.get("sslmode")
            if sslmode is not None and sslmode not in _SSLMODES:
                raise ConfigError(
                    f"invalid settings: DATABASE_URL's sslmode {sslmode!r} is not one of "
                    + ", ".join(_SSLMODES)
                )
        if 0 < settings.raw_event_days < MIN_EVENT_DAYS:
            raise ConfigError(
                f"invalid settings: RAW_EVENT_DAYS ({settings.raw_event_days}) is below "
                f"{MIN_EVENT_DAYS}: a delivery's row is what dedupes GitHub's redeliveries "
                "(0 keeps rows for ever)"
            )
        if 0 < settings.history_days < MIN_HISTORY_DAYS:
            raise ConfigError(
                f"invalid settings: HISTORY_DAYS ({settings.history_days}) is below "
                f"{MIN_HISTORY_DAYS}: the metrics' default windows read 30 days of builds "
                "(0 keeps history for ever)"
            )
        if 0 < settings.raw_event_days < settings.sync_since_days:
            raise ConfigError(
                f"invalid settings: RAW_EVENT_DAYS ({settings.raw_event_days}) is below "
                f"SYNC_SINCE_DAYS ({settings.sync_since_days:g}): a first sync would record "
                "again what retention removed"
            )
        if settings.db_pool_min > settings.db_pool_max:
            raise ConfigError(
                f"invalid settings: DB_POOL_MIN ({settings.db_pool_min}) is above "
                f"DB_POOL_MAX ({settings.db_pool_max})"
            )
        if cls.SERVES_API and settings.api_tokens is not None and not settings.api_token_list:
            # Set but naming no token ("", " ", ","; a blank secret): refusing beats an API left
            # open unnoticed.
            raise ConfigError("invalid settings: API_TOKENS names no token (unset it for none)")
        bad = [o for o in settings.cors_origin_list if not _origin_ok(o)]
        if bad:
            raise ConfigError(
                f"invalid settings: CORS_ORIGINS: {bad[0]!r} is not an origin "
                "(scheme://host[:port], comma-separated, or *)"
            )
        try:
            re.compile(settings.deploy_workflows)
        except re.error as exc:
            raise ConfigError(
                f"invalid settings: DEPLOY_WORKFLOWS is not a regular expression ({exc})"
            ) from None
        if cls.USES_APP_KEY and (settings.github_app_id is None) != (
            not settings.secret("github_app_private_key")
        ):
            raise ConfigError(
                "invalid settings: GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY go together "
                "(one is set, the other is not)"
            )
        # Blank counts as missing: an empty secret would make every check fail unexplained.
        missing = [name for name in cls.REQUIRED if not settings.secret(name.lower())]
        if missing:
            raise ConfigError(
                f"missing required setting{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
            )
        return settings

    def secret(self, name: str) -> str | None:
        """Plain value of a SecretStr setting without surrounding whitespace, or None when
        unset: a Secret Manager value written with `echo` ends in a newline, which would make
        every webhook signature or Slack URL wrong."""
        value = getattr(self, name)
        return value.get_secret_value().strip() if value is not None else None

    @cached_property
    def api_token_list(self) -> list[str]:
        """API_TOKENS split on commas, blanks dropped."""
        raw = self.secret("api_tokens") or ""
        return [t.strip() for t in raw.split(",") if t.strip()]

    @cached_property
    def cors_origin_list(self) -> list[str]:
        """CORS_ORIGINS split on commas, without a trailing slash (a browser's Origin has
        none, so `https://a.example/` would never match)."""
        # Lower case too: browsers send the scheme and host so.
        return [(o.strip().rstrip("/") or o.strip()).lower() for o in self.cors_origins.split(",")
                if o.strip()]  # fmt: skip

    @cached_property
    def sync_repository_list(self) -> list[str]:
        """SYNC_REPOSITORIES split on commas."""
        return [r.strip() for r in self.sync_repositories.split(",") if r.strip()]

    @property
    def app_mode(self) -> bool:
        """Whether FlowLens runs as a GitHub App (GITHUB_APP_ID and its private key set)."""
        return self.github_app_id is not None and bool(self.secret("github_app_private_key"))

    @property
    def write_back(self) -> Literal["check_run", "status"] | None:
        """How the risk read reaches the pull request: a check run (App mode), a commit status
        (token mode), or not at all (no GitHub credentials, or no GitHub API)."""
        if not self.github_api_url:
            return None
        if self.app_mode:
            return "check_run"
        return "status" if self.secret("github_token") else None

    @property
    def dsn(self) -> str:
        """DATABASE_URL in plain text (raises ConfigError when unset)."""
        value = self.secret("database_url")
        if not value:
            raise ConfigError("missing required setting: DATABASE_URL")
        return value


_S = TypeVar("_S", bound=Settings)


class IngestSettings(Settings):
    """Settings of the ingest function."""

    REQUIRED = ("DATABASE_URL", "GITHUB_WEBHOOK_SECRET")
    # Ingest reads GITHUB_APP_ID only to know its own check suites; it never signs.
    USES_APP_KEY = False


class PollerSettings(Settings):
    """Settings of the poller function."""

    REQUIRED = ("DATABASE_URL",)


class ApiSettings(Settings):
    """Settings of the API service."""

    SERVES_API = True

    REQUIRED = ("DATABASE_URL",)
