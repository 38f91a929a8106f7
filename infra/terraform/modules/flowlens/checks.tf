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

check "github_app_id_and_key_together" {
  assert {
    condition     = (var.github_app_id == "") == !contains(local.enabled_optional_secrets, "GITHUB_APP_PRIVATE_KEY")
    error_message = "GitHub App mode needs both github_app_id and the GITHUB_APP_PRIVATE_KEY secret (in optional_secrets or secret_values); the poller refuses to start with only one."
  }
}
