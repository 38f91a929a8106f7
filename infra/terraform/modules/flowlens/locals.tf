# Names, and the exact environment each deployable receives.
#
# Every env name below is a field of flowlens.settings.Settings, and each deployable's
# *_required_secrets cover its settings class's REQUIRED tuple (IngestSettings,
# PollerSettings, ApiSettings; the migrate job runs `flowlens migrate`, which needs
# DATABASE_URL). tests/unit/test_terraform.py checks both, so keep these literal.

locals {
  names = {
    api       = "${var.name_prefix}-api"
    ingest    = "${var.name_prefix}-ingest"
    poller    = "${var.name_prefix}-poller"
    migrate   = "${var.name_prefix}-migrate"
    scheduler = "${var.name_prefix}-poller-tick"
    registry  = var.name_prefix
    connector = "${var.name_prefix}-vpc"
  }

  labels = merge({ app = "flowlens", managed-by = "terraform" }, var.labels)

  apis = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
    "vpcaccess.googleapis.com",
  ]

  cloudsql = var.database_mode == "cloudsql"

  # functions-framework's own switch, not a flowlens setting. Cloud Run functions turns it on
  # by default, and then functions-framework re-configures logging after main.py ran: root
  # at WARNING, flowlens' handler dropped, every existing logger disabled. Off, flowlens'
  # JSON lines (with their trace field) are the function's logs.
  functions_framework_env = {
    LOG_EXECUTION_ID = "false"
  }

  # --- ingest: functions/ingest/main.py, target `ingest` (IngestSettings) ---
  ingest_env = {
    LOG_FORMAT  = "json"
    LOG_LEVEL   = var.log_level
    DB_POOL_MAX = tostring(var.ingest_db_pool_max)
    FEED_NOTIFY = tostring(var.feed_notify)
    # Trace names in its log lines (projects/P/traces/T): the runtime does not set it.
    GOOGLE_CLOUD_PROJECT = var.project_id
    # App mode: the suites GitHub makes for FlowLens's own check runs are not builds.
    GITHUB_APP_ID = var.github_app_id
    # Pay-per-use: committed work wakes the poller (OIDC identity token, WAKE_AUTH=oidc).
    POLLER_URL          = google_cloudfunctions2_function.poller.service_config[0].uri
    POLL_BUDGET_SECONDS = tostring(var.poll_budget_seconds)
  }
  ingest_required_secrets = ["DATABASE_URL", "GITHUB_WEBHOOK_SECRET"]
  ingest_optional_secrets = ["CI_WRITE_KEY"]

  # --- poller: functions/poller/main.py, target `poll` (PollerSettings) ---
  poller_env = {
    LOG_FORMAT            = "json"
    LOG_LEVEL             = var.log_level
    DB_POOL_MAX           = tostring(var.poller_db_pool_max)
    GEMINI_MODEL          = var.gemini_model
    GITHUB_API_URL        = var.github_api_url
    POLL_INTERVAL_SECONDS = tostring(var.poll_interval_seconds)
    POLL_BUDGET_SECONDS   = tostring(var.poll_budget_seconds)
    POLL_IDLE_SCANS       = tostring(var.poll_idle_scans)
    AI_CONCURRENCY        = tostring(var.ai_concurrency)
    FEED_NOTIFY           = tostring(var.feed_notify)
    # Write-back to the pull request (docs/GITHUB_APP.md): App mode with GITHUB_APP_ID and the
    # GITHUB_APP_PRIVATE_KEY secret, else a commit status with GITHUB_TOKEN.
    GITHUB_APP_ID = var.github_app_id
    DASHBOARD_URL = var.dashboard_url
    CHECK_FAIL_AT = var.check_fail_at
  }
  poller_required_secrets = ["DATABASE_URL"]
  poller_optional_secrets = ["GEMINI_API_KEY", "GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY", "ALERT_SLACK_WEBHOOK_URL", "ALERT_SMTP_PASSWORD"]

  # --- api: services/api (ApiSettings) ---
  api_env = {
    LOG_FORMAT   = "json"
    LOG_LEVEL    = var.log_level
    DB_POOL_MAX  = tostring(var.api_db_pool_max)
    CORS_ORIGINS = var.cors_origins
    FEED_NOTIFY  = tostring(var.feed_notify)
  }
  api_required_secrets = ["DATABASE_URL"]
  api_optional_secrets = ["API_TOKENS"]

  # --- migrate: Cloud Run job running `flowlens migrate` (Settings + DATABASE_URL) ---
  migrate_env = {
    LOG_FORMAT  = "json"
    LOG_LEVEL   = var.log_level
    DB_POOL_MAX = "1"
  }
  migrate_required_secrets = ["DATABASE_URL"]
  migrate_optional_secrets = []

  # Settings an operator may add through var.extra_env: non-secret knobs with safe
  # defaults that the module does not set itself. Each is a flowlens Settings field (the
  # test checks); resources reject any other name with a precondition.
  tunable_settings = [
    "DB_POOL_MIN",
    "LEASE_SECONDS",
    "MAX_ATTEMPTS",
    "POLL_BATCH_SIZE",
    "FEED_WINDOW_SECONDS",
    "FEED_POLL_SECONDS",
    "WS_QUEUE_SIZE",
    "GEMINI_TIMEOUT_SECONDS",
    "GEMINI_MAX_ATTEMPTS",
    "GITHUB_PATCH_MAX_BYTES",
    # Retention (docs/OPERATIONS.md "Retention").
    "RAW_PAYLOAD_DAYS",
    "RAW_EVENT_DAYS",
    "HISTORY_DAYS",
    "RETENTION_INTERVAL_SECONDS",
    "RETENTION_BATCH_SIZE",
    # Alerts and the scheduled GitHub sync (docs/ALERTS.md, docs/SYNC.md); their secrets
    # (ALERT_SLACK_WEBHOOK_URL, ALERT_SMTP_PASSWORD) are Secret Manager secrets below.
    "ALERT_CHANNELS",
    "ALERT_ON",
    "ALERT_BUILD_PROVIDERS",
    "ALERT_WINDOW_HOURS",
    "ALERT_MAX_ATTEMPTS",
    "ALERT_RETRY_SECONDS",
    "ALERT_INTERVAL_SECONDS",
    "ALERT_TIMEOUT_SECONDS",
    "ALERT_EMAIL_TO",
    "ALERT_EMAIL_FROM",
    "ALERT_EMAIL_TRANSPORT",
    "ALERT_SMTP_HOST",
    "ALERT_SMTP_PORT",
    "ALERT_SMTP_USERNAME",
    "ALERT_SMTP_TLS",
    "ALERT_SES_REGION",
    "SYNC_REPOSITORIES",
    "SYNC_INTERVAL_SECONDS",
    "SYNC_SINCE_DAYS",
    "SYNC_MAX_WAIT_SECONDS",
    "CHECK_TIMEOUT_SECONDS",
    # DORA's workflow fallback (docs/METRICS.md), read by ingest.
    "DEPLOY_WORKFLOWS",
  ]
  extra_env_ok = {
    for d, m in var.extra_env : d => alltrue([for k in keys(m) : contains(local.tunable_settings, k)])
  }

  # --- secrets ---
  secret_names          = ["DATABASE_URL", "GITHUB_WEBHOOK_SECRET", "GEMINI_API_KEY", "CI_WRITE_KEY", "API_TOKENS", "GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY", "ALERT_SLACK_WEBHOOK_URL", "ALERT_SMTP_PASSWORD"]
  optional_secret_names = ["GEMINI_API_KEY", "CI_WRITE_KEY", "API_TOKENS", "GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY", "ALERT_SLACK_WEBHOOK_URL", "ALERT_SMTP_PASSWORD"]
  secret_ids            = { for n in local.secret_names : n => "${var.name_prefix}-${lower(replace(n, "_", "-"))}" }

  # Secret names only, so the (sensitive) values never decide what is created.
  given_secret_names = nonsensitive(toset(keys(var.secret_values)))
  enabled_optional_secrets = setunion(
    var.optional_secrets,
    setintersection(local.given_secret_names, local.optional_secret_names),
  )

  ingest_secrets  = setunion(local.ingest_required_secrets, setintersection(local.ingest_optional_secrets, local.enabled_optional_secrets))
  poller_secrets  = setunion(local.poller_required_secrets, setintersection(local.poller_optional_secrets, local.enabled_optional_secrets))
  api_secrets     = setunion(local.api_required_secrets, setintersection(local.api_optional_secrets, local.enabled_optional_secrets))
  migrate_secrets = toset(local.migrate_required_secrets)

  # One secretAccessor binding per (deployable, secret) it reads, and no other.
  secret_access = merge([
    for sa, names in {
      ingest  = local.ingest_secrets
      poller  = local.poller_secrets
      api     = local.api_secrets
      migrate = local.migrate_secrets
    } : { for n in names : "${sa}/${n}" => { sa = sa, secret = n } }
  ]...)

  # Versions Terraform wrote itself are referenced by number, so replacing one (a rotated
  # database password, a new webhook secret) rolls every deployable that reads it onto a new
  # revision. Versions added with gcloud are read as "latest" unless var.secret_versions pins them.
  managed_secret_versions = merge(
    { for n, v in google_secret_manager_secret_version.given : n => v.version },
    { for v in google_secret_manager_secret_version.database_url : "DATABASE_URL" => v.version },
    { for v in google_secret_manager_secret_version.webhook : "GITHUB_WEBHOOK_SECRET" => v.version },
  )
  secret_version = {
    for n in local.secret_names : n => lookup(var.secret_versions, n, lookup(local.managed_secret_versions, n, "latest"))
  }

  connector_id = local.cloudsql ? google_vpc_access_connector.connector[0].id : null

  # Connections an API instance opens outside its pool: the change feed's LISTEN, while
  # feed_notify is on (flowlens.api.feed.LISTEN_CONNECTIONS). Ingest and the poller open none.
  api_listen_connections = var.feed_notify ? 1 : 0

  # Worst case of open database connections, checked against db_max_connections: every
  # instance's pool, the API's LISTEN connections and the migration job's one connection.
  db_connection_budget = (
    var.ingest_max_instances * var.ingest_db_pool_max
    + var.poller_max_instances * var.poller_db_pool_max
    + var.api_max_instances * (var.api_db_pool_max + local.api_listen_connections)
    + 1
  )
}
