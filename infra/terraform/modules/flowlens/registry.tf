# Artifact Registry repository for the API image (and the migration job, which reuses it).

resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84: the images hold only open-source application code, no secrets (those stay in Secret Manager); Google-managed encryption avoids running a KMS key ring for them.
  project       = var.project_id
  location      = var.region
  repository_id = local.names.registry
  format        = "DOCKER"
  description   = "FlowLens container images"
  labels        = local.labels

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.image_retention_count
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.api]
}
