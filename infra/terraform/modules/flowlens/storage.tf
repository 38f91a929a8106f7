# Function source: the zips `make bundle` writes, stored under content-hash names so an
# unchanged bundle never triggers a rebuild and a changed one always does.

resource "google_storage_bucket" "functions" {
  # checkov:skip=CKV_GCP_62: the bucket holds only the function bundles built from the repository (no user data); writes come from the deployer alone and show in Cloud Audit Logs, so a second access-log bucket adds cost for nothing.
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-functions"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    # Terraform re-uploads a current bundle that was deleted, so old ones can go.
    condition {
      age = 90
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    # Versioning guards against an accidental overwrite; old generations go after a week.
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_storage_bucket_object" "bundle" {
  for_each = toset(["ingest", "poller"])

  bucket = google_storage_bucket.functions.name
  name   = "${each.value}/${filesha256("${var.bundle_dir}/${each.value}.zip")}.zip"
  source = "${var.bundle_dir}/${each.value}.zip"
}
