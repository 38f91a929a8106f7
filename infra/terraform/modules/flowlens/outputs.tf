# What an operator (and `flowlens cloud status`) needs after an apply.

output "webhook_url" {
  description = "GitHub webhook Payload URL (content type application/json or form)."
  value       = google_cloudfunctions2_function.ingest.service_config[0].uri
}

output "ci_webhook_url" {
  description = "CI build reports endpoint (Authorization: Bearer CI_WRITE_KEY)."
  value       = "${google_cloudfunctions2_function.ingest.service_config[0].uri}/api/webhook/github-actions"
}

output "api_url" {
  description = "API base URL; the dashboard is served at / and the WebSocket at /ws."
  value       = google_cloud_run_v2_service.api.uri
}

output "websocket_url" {
  description = "WebSocket endpoint for live pull-request updates."
  value       = "${replace(google_cloud_run_v2_service.api.uri, "https://", "wss://")}/ws"
}

output "service_names" {
  description = "Cloud Run services to check with `flowlens cloud status --service ...`."
  value = [
    google_cloud_run_v2_service.api.name,
    google_cloudfunctions2_function.ingest.name,
    google_cloudfunctions2_function.poller.name,
  ]
}

output "migrate_job" {
  description = "Cloud Run job that applies database migrations."
  value       = google_cloud_run_v2_job.migrate.name
}

output "image_repository" {
  description = "Artifact Registry path to push the API image to."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "secret_ids" {
  description = "Secret Manager secret id of each FlowLens secret, by setting name."
  value       = { for k, s in google_secret_manager_secret.secret : k => s.secret_id }
}

output "webhook_secret_command" {
  description = "Prints the webhook secret to paste into GitHub's webhook form."
  value       = "gcloud secrets versions access latest --secret=${google_secret_manager_secret.secret["GITHUB_WEBHOOK_SECRET"].secret_id} --project=${var.project_id}"
}

output "deployer_service_account" {
  description = "Service account Cloud Build runs cloudbuild.yaml as (null when create_deployer is false)."
  value       = var.create_deployer ? google_service_account.deployer[0].email : null
}

output "database_instance" {
  description = "Cloud SQL instance connection name (null in external mode)."
  value       = local.cloudsql ? google_sql_database_instance.db[0].connection_name : null
}
