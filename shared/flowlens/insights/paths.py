"""What a changed file is: sensitive areas, tests, documentation; `path: what` lines."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from flowlens.insights.models import FileChange
from flowlens.risk.features import LOCK_FILES

# Sensitive categories -> how summaries name them. They steer review advice and which files
# come first among the key changes; the risk score does not use them (they were never fitted).
CATEGORIES: dict[str, str] = {
    "auth": "auth/security code",
    "payments": "payments code",
    "migrations": "database migrations",
    "infra": "infrastructure",
    "ci": "CI configuration",
    "dependencies": "dependency manifests",
}

_AUTH_WORDS = {
    "auth",
    "authn",
    "authz",
    "authentication",
    "authorization",
    "authorize",
    "oauth",
    "oauth2",
    "oidc",
    "saml",
    "sso",
    "login",
    "logout",
    "signin",
    "session",
    "sessions",
    "password",
    "passwords",
    "passwd",
    "jwt",
    "token",
    "tokens",
    "permission",
    "permissions",
    "rbac",
    "acl",
    "security",
    "crypto",
    "secret",
    "secrets",
    "credential",
    "credentials",
}
_PAYMENT_WORDS = {
    "payment",
    "payments",
    "billing",
    "invoice",
    "invoices",
    "checkout",
    "stripe",
    "paypal",
    "subscription",
    "subscriptions",
    "refund",
    "refunds",
    "ledger",
    "wallet",
}
_MIGRATION_WORDS = {"migration", "migrations", "migrate", "alembic", "flyway", "liquibase"}
_SCHEMA_FILES = {"schema.sql", "schema.rb", "schema.prisma", "structure.sql"}
_INFRA_WORDS = {
    "terraform",
    "infra",
    "infrastructure",
    "k8s",
    "kubernetes",
    "helm",
    "ansible",
    "pulumi",
    "deploy",
    "deployment",
    "deployments",
}
_INFRA_SUFFIXES = (".tf", ".tfvars", ".hcl")
_INFRA_FILES = {"dockerfile", "docker-compose.yml", "docker-compose.yaml", "compose.yaml"}
_CI_PREFIXES = (".github/workflows/", ".circleci/", ".buildkite/", ".gitlab/ci/")
_CI_FILES = {
    ".gitlab-ci.yml",
    "jenkinsfile",
    ".travis.yml",
    "azure-pipelines.yml",
    "cloudbuild.yaml",
    "cloudbuild.yml",
    "bitbucket-pipelines.yml",
}
_MANIFEST_FILES = LOCK_FILES | {
    "package.json",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "pipfile",
    "go.mod",
    "cargo.toml",
    "gemfile",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "composer.json",
    "pubspec.yaml",
    "mix.exs",
    "packages.config",
}
_DOC_SUFFIXES = (".md", ".rst", ".txt", ".adoc")
_DOC_FILES = {"license", "licence", "changelog", "authors", "notice", "codeowners"}
_TEST_WORDS = {"test", "tests", "spec", "specs", "__tests__", "testing", "e2e"}

_WORD_SPLIT = re.compile(r"[/_.\-\s]+")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def _words(path: str) -> set[str]:
    """Lower-case words of a path, splitting on separators and camelCase."""
    return {w for w in _WORD_SPLIT.split(_CAMEL.sub(r"\1 \2", path).lower()) if w}


def _is_dependency_file(name: str) -> bool:
    return (
        name in _MANIFEST_FILES
        or (name.startswith("requirements") and name.endswith((".txt", ".in")))
        or name.endswith(".csproj")
    )


def classify_path(path: str) -> set[str]:
    """The sensitive categories (keys of CATEGORIES) a path falls in."""
    lower = path.lower()
    name = PurePosixPath(lower).name
    words = _words(path)
    found: set[str] = set()
    if words & _AUTH_WORDS or name == ".env" or name.startswith(".env."):
        found.add("auth")
    if words & _PAYMENT_WORDS:
        found.add("payments")
    if words & _MIGRATION_WORDS or name in _SCHEMA_FILES:
        found.add("migrations")
    if (
        words & _INFRA_WORDS
        or lower.endswith(_INFRA_SUFFIXES)
        or name in _INFRA_FILES
        or name.startswith("dockerfile")
    ):
        found.add("infra")
    if lower.startswith(_CI_PREFIXES) or name in _CI_FILES:
        found.add("ci")
    if _is_dependency_file(name):
        found.add("dependencies")
    return found


def is_test_path(path: str) -> bool:
    """Whether a path looks like a test file."""
    name = PurePosixPath(path.lower()).name
    return (
        bool(_words(path) & _TEST_WORDS)
        or name.startswith("test_")
        or name.endswith(("_test.py", "_test.go", ".test.ts", ".test.js", ".spec.ts", ".spec.js"))
    )


def is_doc_path(path: str) -> bool:
    """Whether a path is documentation (Markdown, docs/ folder, licence...)."""
    lower = path.lower()
    name = PurePosixPath(lower).name
    return (
        lower.startswith("docs/")
        or "/docs/" in lower
        or (lower.endswith(_DOC_SUFFIXES) and not name.startswith("requirements"))
        or PurePosixPath(name).stem in _DOC_FILES
    )


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def describe(f: FileChange, categories: set[str]) -> str:
    """`path: what changed` for one file."""
    counts = f"+{f.additions}/-{f.deletions}"
    if f.status == "added":
        what = f"added ({counts})"
    elif f.status == "removed":
        what = f"removed ({counts})"
    elif f.status == "renamed" and f.previous_path:
        what = f"renamed from {f.previous_path} ({counts})"
    else:
        what = f"{f.status} ({counts})"
    labels = [CATEGORIES[c] for c in sorted(categories)]
    if labels:
        what = f"{what}, {' and '.join(labels)}"
    return f"{f.path}: {what}"


def key_changes(files: list[FileChange], cats: dict[str, set[str]]) -> list[str]:
    """Up to five files, sensitive ones first, then the largest."""
    ranked = sorted(files, key=lambda f: (not cats[f.path], -(f.additions + f.deletions), f.path))
    return [describe(f, cats[f.path]) for f in ranked[:5]]
