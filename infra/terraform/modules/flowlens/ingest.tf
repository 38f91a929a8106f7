# The ingest function (functions/ingest/main.py, target `ingest`): GitHub's webhook and the
# CI endpoint POST /api/webhook/github-actions. Public, because GitHub calls it without
# Google credentials; every request is authenticated by its HMAC signature or CI bearer.

resource "google_cloudfunctions2_function" "ingest" {
  # checkov:skip=CKV_GCP_124: GitHub's webhook deliveries come from the internet, so ingress must be ALLOW_ALL; every request is authenticated by its HMAC signature (or CI bearer key) first.
  project     = var.project_id
  name        = local.names.ingest
  location    = var.region
  description = "FlowLens ingest: GitHub webhooks and CI build reports"
  labels      = local.labels

  build_config {
    runtime         = var.function_runtime
    entry_point     = "ingest"
    service_account = google_service_account.sa["builder"].id

    source {
      storage_source {
        bucket = google_storage_bucket.functions.name
        object = google_storage_bucket_object.bundle["ingest"].name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.sa["ingest"].email
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    available_memory                 = var.ingest_memory
    available_cpu                    = "1"
    timeout_seconds                  = 60
    min_instance_count               = var.ingest_min_instances
    max_instance_count               = var.ingest_max_instances
    max_instance_request_concurrency = var.ingest_concurrency
    vpc_connector                    = local.connector_id
    vpc_connector_egress_settings    = local.cloudsql ? "PRIVATE_RANGES_ONLY" : null
    environment_variables            = merge(local.ingest_env, var.extra_env.ingest, local.functions_framework_env)

    dynamic "secret_environment_variables" {
      for_each = local.ingest_secrets
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
      condition     = local.extra_env_ok["ingest"]
      error_message = "extra_env.ingest may only set: ${join(", ", local.tunable_settings)}."
    }
  }

  depends_on = [
    google_project_iam_member.builder,
    google_storage_bucket_iam_member.builder_reads_bundles,
    google_secret_manager_secret_iam_member.access,
    google_secret_manager_secret_version.given,
    google_secret_manager_secret_version.webhook,
    google_secret_manager_secret_version.database_url,
    google_secret_manager_secret_iam_member.db_ca,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "ingest_public" {
  # checkov:skip=CKV_GCP_102: GitHub delivers webhooks without Google credentials; the function verifies X-Hub-Signature-256 (and the CI bearer key) before doing anything.
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.ingest.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
