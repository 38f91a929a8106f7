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
  description = "Optional secrets that have a version in Secret Manager: GEMINI_API_KEY, CI_WRITE_KEY, API_TOKENS, GITHUB_TOKEN, ALERT_SLACK_WEBHOOK_URL, ALERT_SMTP_PASSWORD."
  default     = []

  validation {
    condition     = alltrue([for s in var.optional_secrets : contains(["GEMINI_API_KEY", "CI_WRITE_KEY", "API_TOKENS", "GITHUB_TOKEN", "ALERT_SLACK_WEBHOOK_URL", "ALERT_SMTP_PASSWORD"], s)])
    error_message = "Unknown optional secret."
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
