# The account Cloud Build runs cloudbuild.yaml as. Applying this module creates and wires
# every resource above, so the deployer needs administrative roles on those services, and
# nothing outside them (no owner/editor).

resource "google_service_account" "deployer" {
  count = var.create_deployer ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-deployer"
  display_name = "FlowLens deployer (Cloud Build runs terraform apply as this)"

  depends_on = [google_project_service.api]
}

resource "google_project_iam_member" "deployer" {
  for_each = var.create_deployer ? toset([
    "roles/artifactregistry.admin",
    "roles/cloudfunctions.admin",
    "roles/cloudscheduler.admin",
    "roles/cloudsql.admin",
    "roles/compute.networkAdmin",
    "roles/compute.securityAdmin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/logging.logWriter",
    "roles/resourcemanager.projectIamAdmin",
    "roles/run.admin",
    "roles/secretmanager.admin",
    "roles/serviceusage.serviceUsageAdmin",
    "roles/servicenetworking.networksAdmin",
    "roles/storage.admin",
    "roles/vpcaccess.admin",
  ]) : toset([])

  project = var.project_id
  role    = each.value
  member  = google_service_account.deployer[0].member
}
