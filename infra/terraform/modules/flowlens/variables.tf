# Inputs of the FlowLens module. Every variable has a type, a description and a validation.

# --- Where --------------------------------------------------------------------------------

variable "project_id" {
  type        = string
  description = "Google Cloud project id that hosts FlowLens."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project id (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  type        = string
  description = "Region for Cloud Run, Cloud Run functions, Cloud Scheduler, Cloud SQL and Artifact Registry."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like europe-west1 or us-central1."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name; the services become <prefix>-api, <prefix>-ingest, <prefix>-poller."
  default     = "flowlens"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,12}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-14 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels put on every resource that takes labels."
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "Label keys and values must be lowercase letters, digits, underscores or hyphens (max 63)."
  }
}

variable "enable_apis" {
  type        = bool
  description = "Enable the Google APIs FlowLens uses (turn off when a platform team manages them)."
  default     = true

  validation {
    condition     = var.enable_apis == true || var.enable_apis == false
    error_message = "enable_apis must be true or false."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the database, the API service and the migration job from `terraform destroy`."
  default     = true

  validation {
    condition     = var.deletion_protection == true || var.deletion_protection == false
    error_message = "deletion_protection must be true or false."
  }
}

variable "create_deployer" {
  type        = bool
  description = "Create the <prefix>-deployer service account that Cloud Build uses to run cloudbuild.yaml."
  default     = true

  validation {
    condition     = var.create_deployer == true || var.create_deployer == false
    error_message = "create_deployer must be true or false."
  }
}

# --- What gets deployed ---------------------------------------------------------------------

variable "api_image" {
  type        = string
  description = "API container image (services/api/Dockerfile), preferably by digest: REGION-docker.pkg.dev/PROJECT/REPO/api@sha256:..."

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(@sha256:[a-f0-9]{64}|:[A-Za-z0-9_.-]{1,128})$", var.api_image))
    error_message = "api_image must be a full image reference with a tag or an @sha256 digest."
  }
}

variable "bundle_dir" {
  type        = string
  description = "Folder holding ingest.zip and poller.zip written by `make bundle` (build/bundles)."

  validation {
    condition     = fileexists("${var.bundle_dir}/ingest.zip") && fileexists("${var.bundle_dir}/poller.zip")
    error_message = "bundle_dir must contain ingest.zip and poller.zip: run `make bundle` first."
  }
}

variable "function_runtime" {
  type        = string
  description = "Cloud Run functions Python runtime; keep it equal to the Python the tests ran on."
  default     = "python311"

  validation {
    condition     = can(regex("^python3[0-9]{2}$", var.function_runtime))
    error_message = "function_runtime must be a Python runtime id such as python311 or python312."
  }
}

# --- Database --------------------------------------------------------------------------------

variable "database_mode" {
  type        = string
  description = "cloudsql: create a private-IP Cloud SQL for PostgreSQL instance here. external: use the PostgreSQL/YugabyteDB URL stored in the DATABASE_URL secret."
  default     = "cloudsql"

  validation {
    condition     = contains(["cloudsql", "external"], var.database_mode)
    error_message = "database_mode must be cloudsql or external."
  }
}

variable "db_version" {
  type        = string
  description = "Cloud SQL PostgreSQL major version (cloudsql mode)."
  default     = "POSTGRES_18"

  validation {
    condition     = can(regex("^POSTGRES_1[4-9]$", var.db_version))
    error_message = "db_version must be POSTGRES_14 or newer."
  }
}

variable "db_tier" {
  type        = string
  description = "Cloud SQL machine tier (cloudsql mode). db-f1-micro/db-g1-small are shared-core and cheapest; db-custom-CPU-MB for production."
  default     = "db-g1-small"

  validation {
    condition     = can(regex("^db-(f1-micro|g1-small|custom-[0-9]+-[0-9]+|perf-optimized-N-[0-9]+)$", var.db_tier))
    error_message = "db_tier must be db-f1-micro, db-g1-small or db-custom-<vCPU>-<MB>."
  }
}

variable "db_high_availability" {
  type        = bool
  description = "Regional (HA, two zones, twice the price) instead of zonal Cloud SQL."
  default     = false

  validation {
    condition     = var.db_high_availability == true || var.db_high_availability == false
    error_message = "db_high_availability must be true or false."
  }
}

variable "db_disk_size_gb" {
  type        = number
  description = "Initial Cloud SQL SSD size in GB; it grows automatically."
  default     = 10

  validation {
    condition     = var.db_disk_size_gb >= 10 && var.db_disk_size_gb <= 65536
    error_message = "db_disk_size_gb must be between 10 and 65536."
  }
}

variable "db_backup_retention_days" {
  type        = number
  description = "How many daily automated backups Cloud SQL keeps (point-in-time recovery covers the same window, up to 7 days)."
  default     = 7

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 365
    error_message = "db_backup_retention_days must be between 1 and 365."
  }
}

variable "db_max_connections" {
  type        = number
  description = "PostgreSQL max_connections on Cloud SQL; the sum of every deployable's max instances x DB_POOL_MAX (plus one LISTEN connection per API instance and the migration job's one) must stay below it, less 3 reserved."
  default     = 50

  validation {
    condition     = var.db_max_connections >= 25 && var.db_max_connections <= 4000
    error_message = "db_max_connections must be between 25 and 4000."
  }
}

variable "connector_cidr" {
  type        = string
  description = "Unused /28 range for the Serverless VPC Access connector that reaches Cloud SQL's private IP."
  default     = "10.8.0.0/28"

  validation {
    condition     = can(cidrhost(var.connector_cidr, 0)) && endswith(var.connector_cidr, "/28")
    error_message = "connector_cidr must be an IPv4 /28 range."
  }
}

variable "psa_prefix_length" {
  type        = number
  description = "Prefix length of the private services access range reserved for Cloud SQL."
  default     = 20

  validation {
    condition     = var.psa_prefix_length >= 16 && var.psa_prefix_length <= 24
    error_message = "psa_prefix_length must be between 16 and 24."
  }
}

# --- Secrets ---------------------------------------------------------------------------------

variable "secret_values" {
  type        = map(string)
  description = "Optional secret values Terraform writes as Secret Manager versions (they land in the state file; prefer `gcloud secrets versions add`). Keys: DATABASE_URL, GITHUB_WEBHOOK_SECRET, GEMINI_API_KEY, CI_WRITE_KEY, API_TOKENS, GITHUB_TOKEN, GITHUB_APP_PRIVATE_KEY, ALERT_SLACK_WEBHOOK_URL, ALERT_SMTP_PASSWORD."
  default     = {}
  sensitive   = true

  validation {
    condition = alltrue([for k in keys(var.secret_values) : contains(
      ["DATABASE_URL", "GITHUB_WEBHOOK_SECRET", "GEMINI_API_KEY", "CI_WRITE_KEY", "API_TOKENS", "GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY", "ALERT_SLACK_WEBHOOK_URL", "ALERT_SMTP_PASSWORD"], k
    )])
    error_message = "secret_values keys must be names of FlowLens secrets."
  }
}

variable "generate_webhook_secret" {
  type        = bool
  description = "Generate GITHUB_WEBHOOK_SECRET (read it back with gcloud to configure GitHub) unless secret_values gives one."
  default     = true

  validation {
    condition     = var.generate_webhook_secret == true || var.generate_webhook_secret == false
    error_message = "generate_webhook_secret must be true or false."
  }
}

variable "optional_secrets" {
  type        = set(string)
  description = "Optional secrets that have a version and should be passed to the deployables: GEMINI_API_KEY, CI_WRITE_KEY, API_TOKENS, GITHUB_TOKEN, GITHUB_APP_PRIVATE_KEY, ALERT_SLACK_WEBHOOK_URL, ALERT_SMTP_PASSWORD. Those given in secret_values are added automatically."
  default     = []

  validation {
    condition     = alltrue([for s in var.optional_secrets : contains(["GEMINI_API_KEY", "CI_WRITE_KEY", "API_TOKENS", "GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY", "ALERT_SLACK_WEBHOOK_URL", "ALERT_SMTP_PASSWORD"], s)])
    error_message = "optional_secrets may only hold GEMINI_API_KEY, CI_WRITE_KEY, API_TOKENS, GITHUB_TOKEN, GITHUB_APP_PRIVATE_KEY, ALERT_SLACK_WEBHOOK_URL and ALERT_SMTP_PASSWORD."
  }
}

variable "secret_versions" {
  type        = map(string)
  description = "Secret version each deployable reads, per secret name (default latest). Pin a number and re-apply to roll every revision onto a rotated secret."
  default     = {}

  validation {
    condition = alltrue([for k, v in var.secret_versions : contains(
      ["DATABASE_URL", "GITHUB_WEBHOOK_SECRET", "GEMINI_API_KEY", "CI_WRITE_KEY", "API_TOKENS", "GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY", "ALERT_SLACK_WEBHOOK_URL", "ALERT_SMTP_PASSWORD"], k
    ) && can(regex("^(latest|[0-9]+)$", v))])
    error_message = "secret_versions maps a FlowLens secret name to latest or a version number."
  }
}

# --- Application settings (names mirror flowlens.settings) ------------------------------------

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of every deployable."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "gemini_model" {
  type        = string
  description = "GEMINI_MODEL the poller asks for its insights."
  default     = "gemini-2.5-flash"

  validation {
    condition     = can(regex("^[a-z0-9.-]+$", var.gemini_model))
    error_message = "gemini_model must be a model id such as gemini-2.5-flash."
  }
}

variable "github_api_url" {
  type        = string
  description = "GITHUB_API_URL (GitHub Enterprise Server: https://HOST/api/v3; empty: no files lookup, the analyser sees PR text and counts only)."
  default     = "https://api.github.com"

  validation {
    condition     = var.github_api_url == "" || startswith(var.github_api_url, "https://")
    error_message = "github_api_url must be an https URL, or empty to turn the files lookup off."
  }
}

variable "github_app_id" {
  type        = string
  description = "GITHUB_APP_ID: the GitHub App's id for App mode (docs/GITHUB_APP.md); its private key is the GITHUB_APP_PRIVATE_KEY secret. Empty: token mode (GITHUB_TOKEN) or no GitHub credentials."
  default     = ""

  validation {
    condition     = can(regex("^([1-9][0-9]*)?$", var.github_app_id))
    error_message = "github_app_id must be the App's numeric id, or empty."
  }
}

variable "dashboard_url" {
  type        = string
  description = "DASHBOARD_URL: where the check run or commit status on a pull request links to (the dashboard's https URL). Empty: no link."
  default     = ""

  validation {
    condition     = var.dashboard_url == "" || startswith(var.dashboard_url, "https://")
    error_message = "dashboard_url must be an https URL, or empty."
  }
}

variable "check_fail_at" {
  type        = string
  description = "CHECK_FAIL_AT: the write-back's quality gate. The check's conclusion is failure at or above this risk level (medium or high), success below it; off: always neutral."
  default     = "off"

  validation {
    condition     = contains(["off", "medium", "high"], var.check_fail_at)
    error_message = "check_fail_at must be off, medium or high."
  }
}

variable "cors_origins" {
  type        = string
  description = "CORS_ORIGINS of the API: comma-separated origins allowed to call it from a browser (empty: same origin only)."
  default     = ""

  validation {
    condition     = alltrue([for o in compact(split(",", var.cors_origins)) : can(regex("^(https?://[^,/ ]+|\\*)$", trimspace(o)))])
    error_message = "cors_origins must be comma-separated http(s)://host[:port] origins or *."
  }
}

variable "feed_notify" {
  type        = bool
  description = "FEED_NOTIFY of ingest, poller and API: LISTEN/NOTIFY as a wake-up hint for the feed tail (set false on YugabyteDB)."
  default     = true

  validation {
    condition     = var.feed_notify == true || var.feed_notify == false
    error_message = "feed_notify must be true or false."
  }
}

variable "extra_env" {
  type = object({
    ingest = optional(map(string), {})
    poller = optional(map(string), {})
    api    = optional(map(string), {})
  })
  description = "More non-secret flowlens settings per deployable, e.g. { poller = { LEASE_SECONDS = \"300\" } }. Only names in locals.tf's tunable_settings are accepted (a precondition checks)."
  default     = {}

  validation {
    condition = alltrue([
      for k in concat(keys(var.extra_env.ingest), keys(var.extra_env.poller), keys(var.extra_env.api)) :
      can(regex("^[A-Z][A-Z0-9_]*$", k))
    ])
    error_message = "extra_env names are upper-case setting names such as LEASE_SECONDS."
  }
}

# --- Ingest function -------------------------------------------------------------------------

variable "ingest_min_instances" {
  type        = number
  description = "Warm ingest instances (0 = scale to zero; 1 removes cold starts for about the price of one idle instance)."
  default     = 0

  validation {
    condition     = var.ingest_min_instances >= 0 && var.ingest_min_instances <= 10
    error_message = "ingest_min_instances must be between 0 and 10."
  }
}

variable "ingest_max_instances" {
  type        = number
  description = "Upper bound of ingest instances (bounds cost and database connections)."
  default     = 5

  validation {
    condition     = var.ingest_max_instances >= 1 && var.ingest_max_instances <= 100
    error_message = "ingest_max_instances must be between 1 and 100."
  }
}

variable "ingest_concurrency" {
  type        = number
  description = "Concurrent webhook deliveries one ingest instance serves."
  default     = 40

  validation {
    condition     = var.ingest_concurrency >= 1 && var.ingest_concurrency <= 1000
    error_message = "ingest_concurrency must be between 1 and 1000."
  }
}

variable "ingest_memory" {
  type        = string
  description = "Memory of one ingest instance."
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.ingest_memory))
    error_message = "ingest_memory must look like 512Mi or 1Gi."
  }
}

variable "ingest_db_pool_max" {
  type        = number
  description = "DB_POOL_MAX of one ingest instance."
  default     = 4

  validation {
    condition     = var.ingest_db_pool_max >= 1 && var.ingest_db_pool_max <= 50
    error_message = "ingest_db_pool_max must be between 1 and 50."
  }
}

# --- Poller function -------------------------------------------------------------------------

variable "poller_schedule" {
  type        = string
  description = "Cloud Scheduler cron for the poller (every minute; each run loops for poll_budget_seconds)."
  default     = "* * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.poller_schedule))) == 5
    error_message = "poller_schedule must be a five-field cron expression."
  }
}

variable "scheduler_time_zone" {
  type        = string
  description = "Time zone of the poller schedule."
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.scheduler_time_zone))
    error_message = "scheduler_time_zone must be a tz database name such as Etc/UTC."
  }
}

variable "poll_interval_seconds" {
  type        = number
  description = "POLL_INTERVAL_SECONDS: pause between two scans inside one poller run."
  default     = 2

  validation {
    condition     = var.poll_interval_seconds > 0 && var.poll_interval_seconds <= 60
    error_message = "poll_interval_seconds must be above 0 and at most 60."
  }
}

variable "poll_budget_seconds" {
  type        = number
  description = "POLL_BUDGET_SECONDS: how long one poller run keeps scanning; a little under the schedule period."
  default     = 50

  validation {
    condition     = var.poll_budget_seconds >= 0 && var.poll_budget_seconds <= 1700
    error_message = "poll_budget_seconds must be between 0 and 1700."
  }
}

variable "poll_idle_scans" {
  type        = number
  description = "POLL_IDLE_SCANS: a poller run ends after this many scans in a row found nothing to do (pay-per-use; ingest wakes it for new work). 0 keeps every run scanning for the whole poll_budget_seconds."
  default     = 2

  validation {
    condition     = var.poll_idle_scans >= 0 && var.poll_idle_scans == floor(var.poll_idle_scans)
    error_message = "poll_idle_scans must be a whole number, 0 or more."
  }
}

variable "poller_timeout_seconds" {
  type        = number
  description = "Request timeout of the poller; must exceed poll_budget_seconds plus one AI batch."
  default     = 300

  validation {
    condition     = var.poller_timeout_seconds >= 60 && var.poller_timeout_seconds <= 1800
    error_message = "poller_timeout_seconds must be between 60 and 1800 (Cloud Scheduler's HTTP limit)."
  }
}

variable "poller_max_instances" {
  type        = number
  description = "Upper bound of concurrent poller runs (overlapping scheduler ticks)."
  default     = 2

  validation {
    condition     = var.poller_max_instances >= 1 && var.poller_max_instances <= 20
    error_message = "poller_max_instances must be between 1 and 20."
  }
}

variable "poller_memory" {
  type        = string
  description = "Memory of one poller instance."
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.poller_memory))
    error_message = "poller_memory must look like 512Mi or 1Gi."
  }
}

variable "poller_cpu" {
  type        = string
  description = "vCPUs of one poller instance. The poller is busy about 50 s of every minute, so this is the largest idle cost; it mostly waits on the database, Gemini and GitHub."
  default     = "0.5"

  validation {
    condition     = contains(["0.25", "0.5", "1", "2"], var.poller_cpu)
    error_message = "poller_cpu must be 0.25, 0.5, 1 or 2."
  }
}

variable "ai_concurrency" {
  type        = number
  description = "AI_CONCURRENCY: Gemini calls one poller run makes at once."
  default     = 16

  validation {
    condition     = var.ai_concurrency >= 1 && var.ai_concurrency <= 256
    error_message = "ai_concurrency must be between 1 and 256."
  }
}

variable "poller_db_pool_max" {
  type        = number
  description = "DB_POOL_MAX of one poller instance."
  default     = 3

  validation {
    condition     = var.poller_db_pool_max >= 1 && var.poller_db_pool_max <= 50
    error_message = "poller_db_pool_max must be between 1 and 50."
  }
}

# --- API service -----------------------------------------------------------------------------

variable "api_min_instances" {
  type        = number
  description = "Warm API instances (0 = scale to zero; WebSocket clients then reconnect after idle)."
  default     = 0

  validation {
    condition     = var.api_min_instances >= 0 && var.api_min_instances <= 100
    error_message = "api_min_instances must be between 0 and 100."
  }
}

variable "api_max_instances" {
  type        = number
  description = "Upper bound of API instances (bounds cost and database connections)."
  default     = 3

  validation {
    condition     = var.api_max_instances >= 1 && var.api_max_instances <= 1000
    error_message = "api_max_instances must be between 1 and 1000."
  }
}

variable "api_concurrency" {
  type        = number
  description = "Concurrent requests per API instance; every open WebSocket counts as one."
  default     = 250

  validation {
    condition     = var.api_concurrency >= 1 && var.api_concurrency <= 1000
    error_message = "api_concurrency must be between 1 and 1000."
  }
}

variable "api_timeout_seconds" {
  type        = number
  description = "Request timeout of the API; it is also the longest a WebSocket stays open before the client reconnects."
  default     = 3600

  validation {
    condition     = var.api_timeout_seconds >= 60 && var.api_timeout_seconds <= 3600
    error_message = "api_timeout_seconds must be between 60 and 3600."
  }
}

variable "api_cpu" {
  type        = string
  description = "vCPUs of one API instance."
  default     = "1"

  validation {
    condition     = contains(["1", "2", "4", "8"], var.api_cpu)
    error_message = "api_cpu must be 1, 2, 4 or 8."
  }
}

variable "api_memory" {
  type        = string
  description = "Memory of one API instance."
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.api_memory))
    error_message = "api_memory must look like 512Mi or 1Gi."
  }
}

variable "api_cpu_always_allocated" {
  type        = bool
  description = "Instance-based billing (CPU between requests). Off: CPU only while a request or WebSocket is open, which is all the feed tail needs."
  default     = false

  validation {
    condition     = var.api_cpu_always_allocated == true || var.api_cpu_always_allocated == false
    error_message = "api_cpu_always_allocated must be true or false."
  }
}

variable "api_public" {
  type        = bool
  description = "Let anyone reach the API (browsers and the Flutter app); API_TOKENS then guards REST and WebSocket."
  default     = true

  validation {
    condition     = var.api_public == true || var.api_public == false
    error_message = "api_public must be true or false."
  }
}

variable "allow_public_api_without_tokens" {
  type        = bool
  description = "Deploy a public API (api_public) without API_TOKENS in optional_secrets: every pull request, insight and build is then readable by anyone with the URL. Off, such a plan fails."
  default     = false

  validation {
    condition     = var.allow_public_api_without_tokens == true || var.allow_public_api_without_tokens == false
    error_message = "allow_public_api_without_tokens must be true or false."
  }
}

variable "api_db_pool_max" {
  type        = number
  description = "DB_POOL_MAX of one API instance."
  default     = 5

  validation {
    condition     = var.api_db_pool_max >= 1 && var.api_db_pool_max <= 100
    error_message = "api_db_pool_max must be between 1 and 100."
  }
}

variable "image_retention_count" {
  type        = number
  description = "How many most recent API images Artifact Registry keeps."
  default     = 10

  validation {
    condition     = var.image_retention_count >= 1 && var.image_retention_count <= 1000
    error_message = "image_retention_count must be between 1 and 1000."
  }
}
