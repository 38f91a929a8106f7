# The API (services/api container) on Cloud Run: REST for the initial load and WebSocket
# /ws for live updates. A WebSocket is one long request, so the request timeout (up to
# 3600 s) is how long a socket lives before the client reconnects; session affinity sends
# a reconnecting client back to the same instance when it can.

resource "google_cloud_run_v2_service" "api" {
  project             = var.project_id
  name                = local.names.api
  location            = var.region
  description         = "FlowLens API: REST and WebSocket live updates"
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection
  labels              = local.labels

  template {
    service_account                  = google_service_account.sa["api"].email
    timeout                          = "${var.api_timeout_seconds}s"
    session_affinity                 = true
    max_instance_request_concurrency = var.api_concurrency
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    labels                           = local.labels

    scaling {
      min_instance_count = var.api_min_instances
      max_instance_count = var.api_max_instances
    }

    dynamic "vpc_access" {
      for_each = local.cloudsql ? [local.connector_id] : []
      content {
        connector = vpc_access.value
        egress    = "PRIVATE_RANGES_ONLY"
      }
    }

    # Cloud SQL's server CA, for DATABASE_URL's sslrootcert (database.tf).
    dynamic "volumes" {
      for_each = google_secret_manager_secret_version.db_ca
      content {
        name = "db-ca"
        secret {
          secret = google_secret_manager_secret.db_ca[0].secret_id
          items {
            version = volumes.value.version
            path    = local.db_ca_file
          }
        }
      }
    }

    containers {
      image = var.api_image

      ports {
        container_port = 8080
      }

      dynamic "volume_mounts" {
        for_each = google_secret_manager_secret_version.db_ca
        content {
          name       = "db-ca"
          mount_path = local.db_ca_dir
        }
      }

      resources {
        limits = {
          cpu    = var.api_cpu
          memory = var.api_memory
        }
        cpu_idle          = !var.api_cpu_always_allocated
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(local.api_env, var.extra_env.api)
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.api_secrets
        content {
          name = env.value
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.secret[env.value].secret_id
              version = local.secret_version[env.value]
            }
          }
        }
      }

      # Ready once the database answers; no liveness probe, so a database outage makes
      # /healthz return 503 without Cloud Run killing every instance.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 3
        timeout_seconds       = 2
        failure_threshold     = 20
        http_get {
          path = "/healthz"
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  lifecycle {
    ignore_changes = [client, client_version]

    precondition {
      condition     = local.extra_env_ok["api"]
      error_message = "extra_env.api may only set: ${join(", ", local.tunable_settings)}."
    }
    # Without API_TOKENS the API answers everyone; with allUsers as invoker, everyone can ask.
    precondition {
      condition     = !var.api_public || var.allow_public_api_without_tokens || contains(local.api_secrets, "API_TOKENS")
      error_message = "The API is public (api_public = true) but gets no API_TOKENS: add a version to the API_TOKENS secret and list it in optional_secrets, or set api_public = false (callers then need Google IAM), or allow_public_api_without_tokens = true to publish the data on purpose."
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.access,
    google_secret_manager_secret_version.given,
    google_secret_manager_secret_version.database_url,
    google_secret_manager_secret_iam_member.db_ca,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "api_public" {
  # checkov:skip=CKV_GCP_102: browsers and the Flutter app call the API without Google credentials; API_TOKENS bearer tokens guard REST and WebSocket, and the service's precondition refuses a public API without them unless allow_public_api_without_tokens says so.
  count = var.api_public ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
