# Re-exported module outputs.

output "webhook_url" {
  description = "GitHub webhook Payload URL."
  value       = module.flowlens.webhook_url
}

output "ci_webhook_url" {
  description = "CI build reports endpoint."
  value       = module.flowlens.ci_webhook_url
}

output "api_url" {
  description = "API and dashboard URL."
  value       = module.flowlens.api_url
}

output "websocket_url" {
  description = "WebSocket endpoint."
  value       = module.flowlens.websocket_url
}

output "service_names" {
  description = "Cloud Run services for `flowlens cloud status`."
  value       = module.flowlens.service_names
}

output "migrate_job" {
  description = "Migration job name."
  value       = module.flowlens.migrate_job
}

output "image_repository" {
  description = "Where to push the API image."
  value       = module.flowlens.image_repository
}

output "webhook_secret_command" {
  description = "Prints the webhook secret for GitHub."
  value       = module.flowlens.webhook_secret_command
}

output "deployer_service_account" {
  description = "Service account for the Cloud Build trigger."
  value       = module.flowlens.deployer_service_account
}
