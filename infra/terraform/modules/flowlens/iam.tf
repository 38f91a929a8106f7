# One service account per deployable, each with only what it needs.
#
#   ingest, poller, api, migrate: read their own secrets (per-secret bindings in secrets.tf),
#                                 nothing project-wide. Cloud SQL is reached by private IP
#                                 with a password, so no cloudsql.client role.
#   scheduler:                    may invoke the poller, nothing else (poller.tf).
#   ingest:                       also may invoke the poller, to wake it (poller.tf).
#   builder:                      builds the function bundles (Cloud Build on behalf of
#                                 Cloud Run functions): logs, the build image registry, and
#                                 read access to the bundle bucket.

resource "google_service_account" "sa" {
  for_each = {
    ingest    = "FlowLens ingest function (GitHub webhooks)"
    poller    = "FlowLens poller function (insights)"
    api       = "FlowLens API service"
    migrate   = "FlowLens migration job"
    scheduler = "FlowLens scheduler: invokes the poller with OIDC"
    builder   = "FlowLens function builds"
  }

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = each.value

  depends_on = [google_project_service.api]
}

locals {
  # The only project-level roles the module grants (the deployer may grant these and no
  # other: cicd.tf). Function builds write logs and push to Cloud Functions' own
  # gcf-artifacts repository, which Google creates on first deploy, outside this module.
  builder_project_roles = [
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
  ]
}

resource "google_project_iam_member" "builder" {
  for_each = toset(local.builder_project_roles)

  project = var.project_id
  role    = each.value
  member  = google_service_account.sa["builder"].member
}

resource "google_storage_bucket_iam_member" "builder_reads_bundles" {
  bucket = google_storage_bucket.functions.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.sa["builder"].member
}

# Cloud Scheduler's service agent mints the OIDC token of the scheduler account.
resource "google_service_account_iam_member" "scheduler_token_creator" {
  service_account_id = google_service_account.sa["scheduler"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"

  depends_on = [google_project_service.api]
}
