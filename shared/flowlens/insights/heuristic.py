"""The built-in analyser: a deterministic risk score from the shape of a change.

Scoring (points add up; >= 5 is high, >= 2 is medium, otherwise low):

* size, counted in changed lines with lock files left out (they are generated):
  < 50 -> 0, < 300 -> 1, < 1000 -> 2, otherwise 3 (0 for a documentation-only change)
* file count: <= 5 -> 0, <= 20 -> 1, otherwise 2 (0 for a documentation-only change)
* sensitive areas touched, each once: auth/security, payments, database migrations and
  infrastructure 2 points each; CI configuration and dependency manifests 1 point each;
  at most 4 points in all
* source code changed but no test file changed: 1
* CI state buildFailed: 3 (passed, pending and building add nothing)

Confidence: the heuristic only sees surface signals, so it stays modest: 0.5 with the
file list, 0.3 without it (totals only), plus 0.1 once CI has finished (passed or
failed), because the build result is a real signal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from flowlens.insights.models import ChangeContext, FileChange, Insight, RiskLevel

NAME = "heuristic"

HIGH_AT = 5
MEDIUM_AT = 2
SENSITIVE_CAP = 4
FAILED_BUILD_POINTS = 3

# Category -> (points, label used in summaries).
CATEGORIES: dict[str, tuple[int, str]] = {
    "auth": (2, "auth/security code"),
    "payments": (2, "payments code"),
    "migrations": (2, "database migrations"),
    "infra": (2, "infrastructure"),
    "ci": (1, "CI configuration"),
    "dependencies": (1, "dependency manifests"),
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
_LOCK_FILES = {
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "pipfile.lock",
    "uv.lock",
    "go.sum",
    "cargo.lock",
    "gemfile.lock",
    "composer.lock",
    "pubspec.lock",
    "packages.lock.json",
}
_MANIFEST_FILES = _LOCK_FILES | {
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


def _is_code(f: FileChange, categories: set[str]) -> bool:
    """Source code whose change would deserve a test (not docs, manifests or CI config)."""
    return not (is_doc_path(f.path) or is_test_path(f.path) or categories & {"dependencies", "ci"})


@dataclass
class _Score:
    points: int = 0
    drivers: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _describe(f: FileChange, categories: set[str]) -> str:
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
    labels = [CATEGORIES[c][1] for c in sorted(categories)]
    if labels:
        what = f"{what}, {' and '.join(labels)}"
    return f"{f.path}: {what}"


class HeuristicAnalyser:
    """Deterministic analyser used when no Gemini key is configured."""

    name = NAME

    async def analyse(self, ctx: ChangeContext) -> Insight:
        """Score the change; never fails and never touches the network."""
        return self.assess(ctx)

    async def aclose(self) -> None:
        """Nothing to release; here so every analyser can be closed the same way."""

    def assess(self, ctx: ChangeContext) -> Insight:
        """The synchronous core of analyse()."""
        files = ctx.files
        cats = {f.path: classify_path(f.path) for f in files}
        score = _Score()

        docs_only = bool(files) and all(is_doc_path(f.path) for f in files)
        counted = [f for f in files if PurePosixPath(f.path.lower()).name not in _LOCK_FILES]
        if files:
            lines = sum(f.additions + f.deletions for f in counted)
        else:
            lines = ctx.additions + ctx.deletions
        file_count = len(files)

        size_text = f"{_plural(lines, 'line')} changed"
        if files:
            size_text += f" across {_plural(file_count, 'file')}"
        score.drivers.append(size_text)
        if docs_only:
            score.drivers.append("documentation only")
        else:
            score.points += 0 if lines < 50 else 1 if lines < 300 else 2 if lines < 1000 else 3
            score.points += 0 if file_count <= 5 else 1 if file_count <= 20 else 2
            if lines >= 1000 or file_count > 20:
                score.advice.append("Consider splitting it into smaller pull requests.")

        self._sensitive(files, cats, score)

        code_changed = any(_is_code(f, cats[f.path]) for f in files)
        tests_changed = any(is_test_path(f.path) for f in files)
        if code_changed and not tests_changed:
            score.points += 1
            score.drivers.append("no tests changed")
            score.advice.append("Add or update tests for the changed code.")
        elif tests_changed:
            score.drivers.append("tests changed")

        if ctx.ci_state == "buildFailed":
            score.points += FAILED_BUILD_POINTS
            score.drivers.append("CI build failed")
            score.advice.insert(0, "Fix the failing CI build before merging.")
        elif ctx.ci_state == "buildPassed":
            score.drivers.append("CI build passed")
        elif ctx.ci_state == "building":
            score.drivers.append("CI build still running")
        else:
            score.drivers.append("CI not reported yet")

        risk: RiskLevel = (
            "high" if score.points >= HIGH_AT else "medium" if score.points >= MEDIUM_AT else "low"
        )
        if not score.advice:
            score.advice.append("Routine review is enough.")

        confidence = 0.5 if files else 0.3
        if ctx.ci_state in ("buildPassed", "buildFailed"):
            confidence += 0.1

        return Insight(
            risk_level=risk,
            summary=f"{risk.capitalize()} risk (heuristic score {score.points}): "
            + "; ".join(score.drivers)
            + ".",
            recommendation=" ".join(score.advice),
            key_changes=self._key_changes(files, cats),
            confidence_score=round(confidence, 2),
            model=NAME,
        )

    @staticmethod
    def _sensitive(files: list[FileChange], cats: dict[str, set[str]], score: _Score) -> None:
        """Add points, drivers and advice for the sensitive areas the change touches."""
        touched = [c for c in CATEGORIES if any(c in cats[f.path] for f in files)]
        points = sum(CATEGORIES[c][0] for c in touched)
        score.points += min(points, SENSITIVE_CAP)
        for c in touched:
            example = next(f.path for f in files if c in cats[f.path])
            score.drivers.append(f"touches {CATEGORIES[c][1]} ({example})")
        if touched:
            areas = ", ".join(CATEGORIES[c][1] for c in touched)
            score.advice.append(f"Ask an owner of the {areas} to review those files.")
        if "migrations" in touched:
            score.advice.append("Check the migration is reversible and safe on a live database.")

    @staticmethod
    def _key_changes(files: list[FileChange], cats: dict[str, set[str]]) -> list[str]:
        """Up to five files, sensitive ones first, then the largest."""
        ranked = sorted(
            files,
            key=lambda f: (not cats[f.path], -(f.additions + f.deletions), f.path),
        )
        return [_describe(f, cats[f.path]) for f in ranked[:5]]
