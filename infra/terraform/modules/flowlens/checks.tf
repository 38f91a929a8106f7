# Plan-time sanity checks that span several variables.

check "database_connection_budget" {
  assert {
    condition     = !local.cloudsql || local.db_connection_budget < var.db_max_connections - 3
    error_message = "At full scale the deployables may open ${local.db_connection_budget} connections, but Cloud SQL allows ${var.db_max_connections} (3 are reserved): lower *_max_instances or *_db_pool_max, or raise db_max_connections and db_tier."
  }
}

check "poll_budget_fits_schedule" {
  assert {
    condition     = var.poller_schedule != "* * * * *" || var.poll_budget_seconds <= 60
    error_message = "With a run every minute, a poll budget above 60 s keeps two pollers running at once all the time."
  }
}
