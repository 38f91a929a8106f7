# The account Cloud Build runs cloudbuild.yaml as. Applying this module creates and wires
# every resource above, so the deployer needs administrative roles on those services, and
# nothing outside them (no owner/editor).
#
# Project IAM is the exception: unconditional projectIamAdmin could grant anyone (itself
# included) roles/owner. The module's only project-level grants are the builder's, so the
# deployer may add or remove those roles and no other; every other binding it manages is on
# a resource (secrets, service accounts, the poller, the bundle bucket) and comes with that
# service's admin role. Its own roles are granted by hand once (docs/DEPLOY.md, step 3).

locals {
  deployer_project_roles = {
    "roles/artifactregistry.admin"          = ""
    "roles/cloudfunctions.admin"            = ""
    "roles/cloudscheduler.admin"            = ""
    "roles/cloudsql.admin"                  = ""
    "roles/compute.networkAdmin"            = ""
    "roles/compute.securityAdmin"           = ""
    "roles/iam.serviceAccountAdmin"         = ""
    "roles/iam.serviceAccountUser"          = ""
    "roles/logging.logWriter"               = ""
    "roles/run.admin"                       = ""
    "roles/secretmanager.admin"             = ""
    "roles/serviceusage.serviceUsageAdmin"  = ""
    "roles/servicenetworking.networksAdmin" = ""
    "roles/storage.admin"                   = ""
    "roles/vpcaccess.admin"                 = ""
    # IAM condition: the request may only change grants of these roles (reads change none).
    "roles/resourcemanager.projectIamAdmin" = "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly(${jsonencode(local.builder_project_roles)})"
  }
}

resource "google_service_account" "deployer" {
  count = var.create_deployer ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-deployer"
  display_name = "FlowLens deployer (Cloud Build runs terraform apply as this)"

  depends_on = [google_project_service.api]
}

resource "google_project_iam_member" "deployer" {
  for_each = var.create_deployer ? local.deployer_project_roles : {}

  project = var.project_id
  role    = each.key
  member  = google_service_account.deployer[0].member

  dynamic "condition" {
    for_each = each.value == "" ? [] : [each.value]
    content {
      title       = "flowlens-builder-roles-only"
      description = "May grant and revoke only the project roles the FlowLens module gives its builder account."
      expression  = condition.value
    }
  }

  lifecycle {
    # Replacing the unconditional grant of an older deployment: the conditional one must
    # exist before the old one goes, or the apply removes the power to finish itself.
    create_before_destroy = true
  }
}
