# Private networking for Cloud SQL (cloudsql mode only): a VPC, a private services access
# range peered with Cloud SQL, and a Serverless VPC Access connector the deployables use to
# reach the database's private IP. External databases are reached over TLS instead.

resource "google_compute_network" "vpc" {
  count = local.cloudsql ? 1 : 0

  project                 = var.project_id
  name                    = "${var.name_prefix}-vpc"
  auto_create_subnetworks = false

  depends_on = [google_project_service.api]
}

# Nothing in this VPC accepts connections from outside: say so explicitly (and log hits).
resource "google_compute_firewall" "deny_ingress" {
  count = local.cloudsql ? 1 : 0

  project   = var.project_id
  name      = "${var.name_prefix}-deny-ingress"
  network   = google_compute_network.vpc[0].name
  direction = "INGRESS"
  priority  = 65534

  deny {
    protocol = "all"
  }

  source_ranges = ["0.0.0.0/0"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_global_address" "psa" {
  count = local.cloudsql ? 1 : 0

  project       = var.project_id
  name          = "${var.name_prefix}-psa"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.psa_prefix_length
  network       = google_compute_network.vpc[0].id
}

resource "google_service_networking_connection" "psa" {
  count = local.cloudsql ? 1 : 0

  network                 = google_compute_network.vpc[0].id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.psa[0].name]
}

resource "google_vpc_access_connector" "connector" {
  count = local.cloudsql ? 1 : 0

  project       = var.project_id
  name          = local.names.connector
  region        = var.region
  network       = google_compute_network.vpc[0].name
  ip_cidr_range = var.connector_cidr
  machine_type  = "e2-micro"
  min_instances = 2
  max_instances = 3

  depends_on = [google_project_service.api]
}
