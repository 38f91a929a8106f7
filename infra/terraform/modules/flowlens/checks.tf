# Plan-time warnings that span several variables (hard limits are preconditions on the
# resources they protect: the database connection budget in database.tf, the poller
# timeout in poller.tf).

check "poll_budget_fits_schedule" {
  assert {
    condition     = var.poller_schedule != "* * * * *" || var.poll_budget_seconds <= 60
    error_message = "With a run every minute, a poll budget above 60 s keeps two pollers running at once all the time."
  }
}

check "external_database_connection_budget" {
  assert {
    condition     = local.cloudsql || local.db_connection_budget <= 100
    error_message = "At full scale the deployables may open ${local.db_connection_budget} connections: make sure the external database allows that many."
  }
}
