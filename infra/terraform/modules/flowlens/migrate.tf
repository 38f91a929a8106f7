# Schema migrations run as their own Cloud Run job (`flowlens migrate` in the API image),
# never at a cold start. cloudbuild.yaml updates the job to the new image and executes it,
# waiting for success, before the new code is deployed. Migrations are safe to run twice.

resource "google_cloud_run_v2_job" "migrate" {
  project             = var.project_id
  name                = local.names.migrate
  location            = var.region
  deletion_protection = var.deletion_protection
  labels              = local.labels

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.sa["migrate"].email
      timeout         = "600s"
      max_retries     = 1

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
        image   = var.api_image
        command = ["flowlens"]
        args    = ["migrate"]

        dynamic "volume_mounts" {
          for_each = google_secret_manager_secret_version.db_ca
          content {
            name       = "db-ca"
            mount_path = local.db_ca_dir
          }
        }

        resources {
          limits = {
            cpu    = "1"
            memory = "512Mi"
          }
        }

        dynamic "env" {
          for_each = local.migrate_env
          content {
            name  = env.key
            value = env.value
          }
        }

        dynamic "env" {
          for_each = local.migrate_secrets
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
      }
    }
  }

  lifecycle {
    ignore_changes = [client, client_version]
  }

  depends_on = [
    google_secret_manager_secret_iam_member.access,
    google_secret_manager_secret_version.given,
    google_secret_manager_secret_version.database_url,
    google_secret_manager_secret_iam_member.db_ca,
    google_sql_database.flowlens,
    google_sql_user.flowlens,
  ]
}
