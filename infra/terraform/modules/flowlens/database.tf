# Cloud SQL for PostgreSQL (database_mode = "cloudsql"): private IP only, TLS required and
# the server's certificate verified, daily backups with point-in-time recovery. In external
# mode nothing here is created and the DATABASE_URL secret holds the URL of an existing
# PostgreSQL or YugabyteDB (YSQL).

resource "random_id" "db_suffix" {
  count = local.cloudsql ? 1 : 0

  # Cloud SQL instance names cannot be reused for a week after deletion.
  byte_length = 3
}

resource "random_password" "db" {
  count = local.cloudsql ? 1 : 0

  length  = 32
  special = false
}

resource "google_sql_database_instance" "db" {
  # checkov:skip=CKV_GCP_6: TLS is enforced by ssl_mode = "ENCRYPTED_ONLY" (provider 6 removed require_ssl, which is what this check reads); client certificates are not used on a private-IP-only instance.
  # checkov:skip=CKV2_GCP_13: log_duration = on writes a log line for every statement; at webhook rates that is the largest cost line of the project for no operational gain (slow queries show in Query Insights).
  count = local.cloudsql ? 1 : 0

  project             = var.project_id
  name                = "${var.name_prefix}-pg-${random_id.db_suffix[0].hex}"
  region              = var.region
  database_version    = var.db_version
  deletion_protection = var.deletion_protection

  settings {
    tier                        = var.db_tier
    edition                     = "ENTERPRISE"
    availability_type           = var.db_high_availability ? "REGIONAL" : "ZONAL"
    disk_type                   = "PD_SSD"
    disk_size                   = var.db_disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection
    user_labels                 = local.labels

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.vpc[0].id
      enable_private_path_for_google_cloud_services = true
      ssl_mode                                      = "ENCRYPTED_ONLY"
      # A CA of this instance alone signs its certificate, so verify-ca (below) accepts this
      # instance and no other: its certificate names no IP, which rules out verify-full.
      server_ca_mode = "GOOGLE_MANAGED_INTERNAL_CA"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "03:00"
      transaction_log_retention_days = min(var.db_backup_retention_days, 7)

      backup_retention_settings {
        retained_backups = var.db_backup_retention_days
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    database_flags {
      name  = "max_connections"
      value = tostring(var.db_max_connections)
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }

  lifecycle {
    precondition {
      condition     = local.db_connection_budget < var.db_max_connections - 3
      error_message = "At full scale the deployables may open ${local.db_connection_budget} connections, but Cloud SQL allows ${var.db_max_connections} (3 are reserved): lower *_max_instances or *_db_pool_max, or raise db_max_connections (and db_tier)."
    }
  }

  depends_on = [google_service_networking_connection.psa]
}

resource "google_sql_database" "flowlens" {
  count = local.cloudsql ? 1 : 0

  project  = var.project_id
  instance = google_sql_database_instance.db[0].name
  name     = "flowlens"
}

resource "google_sql_user" "flowlens" {
  count = local.cloudsql ? 1 : 0

  project  = var.project_id
  instance = google_sql_database_instance.db[0].name
  name     = "flowlens"
  password = random_password.db[0].result
}

# Every server CA the instance trusts, the upcoming one of a rotation included, so that
# an apply after `gcloud sql ssl server-ca-certs create` readies clients for the rotation.
data "google_sql_ca_certs" "db" {
  count = local.cloudsql ? 1 : 0

  project  = var.project_id
  instance = google_sql_database_instance.db[0].name
}

locals {
  # libpq reads sslrootcert from a file: every deployable that connects (all read
  # DATABASE_URL) mounts the db_ca secret there.
  db_ca_readers = ["ingest", "poller", "api", "migrate"]
  db_ca_dir     = "/etc/secrets/db-ca"
  db_ca_file    = "server-ca.pem"
  db_ca_pem     = local.cloudsql ? "${join("\n", [for c in data.google_sql_ca_certs.db[0].certs : trimspace(c.cert)])}\n" : ""

  # The connection goes over TCP to the private IP (no Auth Proxy): verify-ca checks the
  # server's certificate against the instance's own CA, so nothing in the VPC path can
  # stand in for the database. Cloud SQL only accepts TLS (ssl_mode above).
  cloudsql_dsn = local.cloudsql ? format(
    "postgresql://%s:%s@%s:5432/%s?sslmode=verify-ca&sslrootcert=%s/%s",
    google_sql_user.flowlens[0].name,
    urlencode(random_password.db[0].result),
    google_sql_database_instance.db[0].private_ip_address,
    google_sql_database.flowlens[0].name,
    local.db_ca_dir,
    local.db_ca_file,
  ) : ""
}
