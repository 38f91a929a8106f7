# Inputs of the example root; the module documents every other knob it has.

variable "project_id" {
  type        = string
  description = "Google Cloud project id."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project id."
  }
}

variable "region" {
  type        = string
  description = "Region for every regional resource."
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like europe-west1."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name; cloudbuild.yaml passes its _PREFIX."
  default     = "flowlens"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,12}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-14 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "api_image" {
  type        = string
  description = "API image reference, by digest from cloudbuild.yaml."

  validation {
    condition     = length(var.api_image) > 0
    error_message = "api_image must be set."
  }
}

variable "bundle_dir" {
  type        = string
  description = "Folder with the function zips written by `make bundle`."
  default     = "../../../build/bundles"

  validation {
    condition     = length(var.bundle_dir) > 0
    error_message = "bundle_dir must be set."
  }
}

variable "database_mode" {
  type        = string
  description = "cloudsql (create a private Cloud SQL instance) or external (URL in the DATABASE_URL secret)."
  default     = "cloudsql"

  validation {
    condition     = contains(["cloudsql", "external"], var.database_mode)
    error_message = "database_mode must be cloudsql or external."
  }
}

variable "optional_secrets" {
  type        = set(string)
  description = "Optional secrets that have a version in Secret Manager: GEMINI_API_KEY, CI_WRITE_KEY, API_TOKENS, GITHUB_TOKEN, GITHUB_APP_PRIVATE_KEY, ALERT_SLACK_WEBHOOK_URL, ALERT_SMTP_PASSWORD."
  default     = []

  validation {
    condition     = alltrue([for s in var.optional_secrets : contains(["GEMINI_API_KEY", "CI_WRITE_KEY", "API_TOKENS", "GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY", "ALERT_SLACK_WEBHOOK_URL", "ALERT_SMTP_PASSWORD"], s)])
    error_message = "Unknown optional secret."
  }
}

variable "api_public" {
  type        = bool
  description = "Let anyone reach the API (allUsers may invoke it); API_TOKENS must then be in optional_secrets."
  default     = true

  validation {
    condition     = var.api_public == true || var.api_public == false
    error_message = "api_public must be true or false."
  }
}

variable "allow_public_api_without_tokens" {
  type        = bool
  description = "Deploy a public API without API_TOKENS on purpose (its data is then anyone's); off, the plan fails."
  default     = false

  validation {
    condition     = var.allow_public_api_without_tokens == true || var.allow_public_api_without_tokens == false
    error_message = "allow_public_api_without_tokens must be true or false."
  }
}

variable "cors_origins" {
  type        = string
  description = "Comma-separated browser origins allowed to call the API."
  default     = ""

  validation {
    condition     = !strcontains(var.cors_origins, " ,")
    error_message = "cors_origins must be comma-separated without stray spaces."
  }
}

variable "api_min_instances" {
  type        = number
  description = "Warm API instances."
  default     = 0

  validation {
    condition     = var.api_min_instances >= 0
    error_message = "api_min_instances must not be negative."
  }
}

variable "api_max_instances" {
  type        = number
  description = "Most API instances."
  default     = 3

  validation {
    condition     = var.api_max_instances >= 1
    error_message = "api_max_instances must be at least 1."
  }
}

variable "api_concurrency" {
  type        = number
  description = "Requests (and WebSockets) per API instance."
  default     = 250

  validation {
    condition     = var.api_concurrency >= 1 && var.api_concurrency <= 1000
    error_message = "api_concurrency must be between 1 and 1000."
  }
}

variable "ingest_max_instances" {
  type        = number
  description = "Most ingest instances."
  default     = 5

  validation {
    condition     = var.ingest_max_instances >= 1
    error_message = "ingest_max_instances must be at least 1."
  }
}

variable "poller_max_instances" {
  type        = number
  description = "Most concurrent poller runs."
  default     = 2

  validation {
    condition     = var.poller_max_instances >= 1
    error_message = "poller_max_instances must be at least 1."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the database, API service and migration job from destroy."
  default     = true

  validation {
    condition     = var.deletion_protection == true || var.deletion_protection == false
    error_message = "deletion_protection must be true or false."
  }
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of every deployable."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "feed_notify" {
  type        = bool
  description = "LISTEN/NOTIFY as the feed's wake-up hint; false on YugabyteDB (docs/DEPLOY.md)."
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
  description = "More non-secret settings per deployable, e.g. alerts and the scheduled sync: { poller = { ALERT_CHANNELS = \"slack\", SYNC_REPOSITORIES = \"octo/app\" } } (the module checks the names)."
  default     = {}

  validation {
    condition = alltrue([
      for k in concat(keys(var.extra_env.ingest), keys(var.extra_env.poller), keys(var.extra_env.api)) :
      can(regex("^[A-Z][A-Z0-9_]*$", k))
    ])
    error_message = "extra_env names are upper-case setting names such as ALERT_CHANNELS."
  }
}

variable "secret_versions" {
  type        = map(string)
  description = "Secret version each deployable reads, per secret name (default latest); pin one to roll revisions onto a rotated secret (docs/OPERATIONS.md)."
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.secret_versions : can(regex("^(latest|[0-9]+)$", v))])
    error_message = "secret_versions maps a secret name to latest or a version number."
  }
}

variable "github_app_id" {
  type        = string
  description = "The GitHub App's id for App mode (docs/GITHUB_APP.md); put its private key in the GITHUB_APP_PRIVATE_KEY secret and optional_secrets. Empty: token mode."
  default     = ""

  validation {
    condition     = can(regex("^([1-9][0-9]*)?$", var.github_app_id))
    error_message = "github_app_id must be the App's numeric id, or empty."
  }
}

variable "dashboard_url" {
  type        = string
  description = "Where the check or status on a pull request links to: the dashboard's https URL (empty: no link)."
  default     = ""

  validation {
    condition     = var.dashboard_url == "" || startswith(var.dashboard_url, "https://")
    error_message = "dashboard_url must be an https URL, or empty."
  }
}

variable "check_fail_at" {
  type        = string
  description = "The check's quality gate: failure at or above this risk level (medium or high); off: always neutral."
  default     = "off"

  validation {
    condition     = contains(["off", "medium", "high"], var.check_fail_at)
    error_message = "check_fail_at must be off, medium or high."
  }
}
