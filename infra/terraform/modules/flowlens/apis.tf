# Google APIs FlowLens needs. Never disabled on destroy: other workloads may share the project.
resource "google_project_service" "api" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project                    = var.project_id
  service                    = each.value
  disable_on_destroy         = false
  disable_dependent_services = false
}

data "google_project" "this" {
  project_id = var.project_id
}
