# Cloud Scheduler ticks the poller every minute with an OIDC token of its own account.
# No retries: the next tick comes within a minute, and a retry would only overlap it.

resource "google_cloud_scheduler_job" "poller" {
  project          = var.project_id
  region           = var.region
  name             = local.names.scheduler
  description      = "Invoke the FlowLens poller"
  schedule         = var.poller_schedule
  time_zone        = var.scheduler_time_zone
  attempt_deadline = "${var.poller_timeout_seconds}s"

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.poller.service_config[0].uri
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.sa["scheduler"].email
      audience              = google_cloudfunctions2_function.poller.service_config[0].uri
    }
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.poller_scheduler,
    google_service_account_iam_member.scheduler_token_creator,
  ]
}
