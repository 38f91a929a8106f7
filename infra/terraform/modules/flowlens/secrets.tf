# Secret Manager holds every secret FlowLens reads; deployables get them as env vars.
#
# Versions come from (in this order of preference): `gcloud secrets versions add` by an
# operator (never in Terraform state); DATABASE_URL built here in cloudsql mode; a generated
# GITHUB_WEBHOOK_SECRET; or var.secret_values. Optional secrets are only passed to the
# deployables once listed in var.optional_secrets (or given in var.secret_values), because
# a deployment that references a secret with no version fails.

resource "google_secret_manager_secret" "secret" {
  for_each = local.secret_ids

  project   = var.project_id
  secret_id = each.value
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_version" "given" {
  # DATABASE_URL is Terraform's own in cloudsql mode.
  for_each = setsubtract(local.given_secret_names, local.cloudsql ? ["DATABASE_URL"] : [])

  secret      = google_secret_manager_secret.secret[each.value].id
  secret_data = var.secret_values[each.value]
}

resource "random_password" "webhook" {
  count = var.generate_webhook_secret && !contains(local.given_secret_names, "GITHUB_WEBHOOK_SECRET") ? 1 : 0

  length  = 40
  special = false
}

resource "google_secret_manager_secret_version" "webhook" {
  count = length(random_password.webhook)

  secret      = google_secret_manager_secret.secret["GITHUB_WEBHOOK_SECRET"].id
  secret_data = random_password.webhook[0].result
}

resource "google_secret_manager_secret_version" "database_url" {
  count = local.cloudsql ? 1 : 0

  secret      = google_secret_manager_secret.secret["DATABASE_URL"].id
  secret_data = local.cloudsql_dsn
}

resource "google_secret_manager_secret_iam_member" "access" {
  for_each = local.secret_access

  project   = var.project_id
  secret_id = google_secret_manager_secret.secret[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa[each.value.sa].member
}

# Cloud SQL's server CA bundle (cloudsql mode), mounted as a file by every deployable that
# connects: not a secret, but Secret Manager is what both Cloud Run functions and Cloud Run
# mount as a file, and libpq's sslrootcert reads one.
resource "google_secret_manager_secret" "db_ca" {
  count = local.cloudsql ? 1 : 0

  project   = var.project_id
  secret_id = "${var.name_prefix}-db-server-ca"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_version" "db_ca" {
  count = local.cloudsql ? 1 : 0

  secret      = google_secret_manager_secret.db_ca[0].id
  secret_data = local.db_ca_pem
}

resource "google_secret_manager_secret_iam_member" "db_ca" {
  for_each = local.cloudsql ? toset(local.db_ca_readers) : toset([])

  project   = var.project_id
  secret_id = google_secret_manager_secret.db_ca[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa[each.value].member
}
