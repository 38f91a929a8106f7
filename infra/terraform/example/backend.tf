# State lives in a GCS bucket created once by hand (docs/DEPLOY.md, step 2):
#   terraform init -backend-config="bucket=PROJECT-tfstate"
# A deployment with another name_prefix keeps its own state: add
#   -backend-config="prefix=PREFIX" (cloudbuild.yaml passes its _PREFIX).
terraform {
  backend "gcs" {
    prefix = "flowlens"
  }
}
