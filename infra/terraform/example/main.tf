# A thin root: the provider and one call of the FlowLens module. Tune it in terraform.tfvars
# (see terraform.tfvars.example); cloudbuild.yaml passes the image and bundle folder.

provider "google" {
  project = var.project_id
  region  = var.region
}

module "flowlens" {
  source = "../modules/flowlens"

  project_id       = var.project_id
  region           = var.region
  name_prefix      = var.name_prefix
  api_image        = var.api_image
  bundle_dir       = var.bundle_dir
  database_mode    = var.database_mode
  optional_secrets = var.optional_secrets
  cors_origins     = var.cors_origins
  api_public       = var.api_public
  log_level        = var.log_level
  feed_notify      = var.feed_notify
  extra_env        = var.extra_env
  secret_versions  = var.secret_versions

  github_app_id = var.github_app_id
  dashboard_url = var.dashboard_url
  check_fail_at = var.check_fail_at

  api_min_instances    = var.api_min_instances
  api_max_instances    = var.api_max_instances
  api_concurrency      = var.api_concurrency
  ingest_max_instances = var.ingest_max_instances
  poller_max_instances = var.poller_max_instances
  deletion_protection  = var.deletion_protection

  allow_public_api_without_tokens = var.allow_public_api_without_tokens
}
