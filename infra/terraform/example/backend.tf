# State lives in a GCS bucket created once by hand (docs/DEPLOY.md, step 2):
#   terraform init -backend-config="bucket=PROJECT-tfstate"
terraform {
  backend "gcs" {
    prefix = "flowlens"
  }
}
