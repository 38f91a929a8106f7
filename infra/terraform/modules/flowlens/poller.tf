# The poller function (functions/poller/main.py, target `poll`). Private: only the scheduler
# account (its minute tick) and ingest's account (its wake-ups) may invoke it. Its timeout exceeds the poll budget, and max instances bound how
# many overlapping scheduler ticks run at once.

resource "google_cloudfunctions2_function" "poller" {
  # checkov:skip=CKV_GCP_124: Cloud Scheduler does not count as internal traffic, so ingress stays ALL; the function is still private, as only the scheduler account holds roles/run.invoker (no allUsers).
  project     = var.project_id
  name        = local.names.poller
  location    = var.region
  description = "FlowLens poller: claims stored events and writes AI insights"
  labels      = local.labels

  build_config {
    runtime         = var.function_runtime
    entry_point     = "poll"
    service_account = google_service_account.sa["builder"].id

    source {
      storage_source {
        bucket = google_storage_bucket.functions.name
        object = google_storage_bucket_object.bundle["poller"].name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.sa["poller"].email
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    available_memory                 = var.poller_memory
    available_cpu                    = var.poller_cpu
    timeout_seconds                  = var.poller_timeout_seconds
    min_instance_count               = 0
    max_instance_count               = var.poller_max_instances
    max_instance_request_concurrency = 1
    vpc_connector                    = local.connector_id
    vpc_connector_egress_settings    = local.cloudsql ? "PRIVATE_RANGES_ONLY" : null
    environment_variables            = merge(local.poller_env, var.extra_env.poller, local.functions_framework_env)

    dynamic "secret_environment_variables" {
      for_each = local.poller_secrets
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = local.secret_version[secret_environment_variables.value]
      }
    }

    # Cloud SQL's server CA, for DATABASE_URL's sslrootcert (database.tf).
    dynamic "secret_volumes" {
      for_each = google_secret_manager_secret_version.db_ca
      content {
        mount_path = local.db_ca_dir
        project_id = var.project_id
        secret     = google_secret_manager_secret.db_ca[0].secret_id
        versions {
          version = secret_volumes.value.version
          path    = local.db_ca_file
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.extra_env_ok["poller"]
      error_message = "extra_env.poller may only set: ${join(", ", local.tunable_settings)}."
    }
    precondition {
      condition     = var.poller_timeout_seconds > var.poll_budget_seconds + 30
      error_message = "poller_timeout_seconds must exceed poll_budget_seconds by more than 30 s (the last batch of AI calls)."
    }
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_bundles,
    google_secret_manager_secret_iam_member.access,
    google_secret_manager_secret_version.given,
    google_secret_manager_secret_version.database_url,
    google_secret_manager_secret_iam_member.db_ca,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "poller_scheduler" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.poller.name
  role     = "roles/run.invoker"
  member   = google_service_account.sa["scheduler"].member
}

# Ingest wakes the poller when it commits work and no invocation runs (pay-per-use,
# docs/ARCHITECTURE.md): with an OIDC identity token of its own account. Nothing else is
# granted to it here.
resource "google_cloud_run_v2_service_iam_member" "poller_ingest" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.poller.name
  role     = "roles/run.invoker"
  member   = google_service_account.sa["ingest"].member
}
