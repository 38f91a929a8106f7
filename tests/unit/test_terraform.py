"""Static checks of infra/terraform and cloudbuild.yaml: parse, document, match the settings."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import Any, get_args

import hcl2
import pytest
import yaml
from hcl2 import SerializationOptions
from pydantic import SecretStr

from flowlens.api.feed import LISTEN_CONNECTIONS
from flowlens.settings import ApiSettings, IngestSettings, PollerSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "infra" / "terraform"
MODULE = TF / "modules" / "flowlens"
EXAMPLE = TF / "example"
TF_FILES = sorted(TF.rglob("*.tf"))
SIX_SECRETS = {
    "DATABASE_URL",
    "GITHUB_WEBHOOK_SECRET",
    "GEMINI_API_KEY",
    "CI_WRITE_KEY",
    "API_TOKENS",
    "GITHUB_TOKEN",
}
# The alert channels' secrets (docs/ALERTS.md), optional like the last four above.
ALERT_SECRETS = {"ALERT_SLACK_WEBHOOK_URL", "ALERT_SMTP_PASSWORD", "GITHUB_APP_PRIVATE_KEY"}
# Deployable -> (settings class, settings it cannot start without).
DEPLOYABLES: dict[str, tuple[type[Settings], set[str]]] = {
    "ingest": (IngestSettings, set(IngestSettings.REQUIRED)),
    "poller": (PollerSettings, set(PollerSettings.REQUIRED)),
    "api": (ApiSettings, set(ApiSettings.REQUIRED)),
    # `flowlens migrate` loads Settings and needs the DSN.
    "migrate": (Settings, {"DATABASE_URL"}),
}
FUNCTION_TARGETS = {"ingest": "ingest", "poller": "poll"}
# Environment the functions get that is not a flowlens setting: functions-framework's own
# switches (locals.tf explains LOG_EXECUTION_ID). Nothing else may bypass the settings class.
FRAMEWORK_ENV = {"LOG_EXECUTION_ID"}
_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)


@cache
def load(path: Path) -> dict[str, Any]:
    """One .tf file as python-hcl2 parses it (quotes stripped)."""
    with path.open(encoding="utf-8") as fh:
        data: dict[str, Any] = hcl2.load(fh, serialization_options=_OPTIONS)
    return data


def blocks(kind: str, folder: Path = MODULE) -> dict[str, Any]:
    """Every top-level `kind` block of a folder, merged (variable, output, locals...)."""
    merged: dict[str, Any] = {}
    for path in sorted(folder.glob("*.tf")):
        for block in load(path).get(kind, []):
            merged.update(block)
    return merged


def resources(rtype: str) -> dict[str, Any]:
    """Resources of one type in the module, by name."""
    found: dict[str, Any] = {}
    for path in sorted(MODULE.glob("*.tf")):
        for block in load(path).get("resource", []):
            found.update(block.get(rtype, {}))
    return found


def one(value: Any) -> Any:
    """A nested block: python-hcl2 gives a list of one dict."""
    assert isinstance(value, list) and len(value) == 1, value
    return value[0]


def dynamic(block: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The `dynamic "name"` blocks inside block."""
    return [d[name] for d in block.get("dynamic", []) if name in d]


def function_targets() -> dict[str, str]:
    """Bundle name -> entry point of every Cloud Run function Terraform deploys."""
    targets = {}
    for fn in resources("google_cloudfunctions2_function").values():
        build = one(fn["build_config"])
        obj = one(one(build["source"])["storage_source"])["object"]
        match = re.search(r'bundle\["(\w+)"\]', obj)
        assert match, obj
        targets[match.group(1)] = build["entry_point"]
    return targets


def locals_() -> dict[str, Any]:
    return blocks("locals")


def settings_fields() -> dict[str, Any]:
    return {name.upper(): field for name, field in Settings.model_fields.items()}


def is_secret(field: Any) -> bool:
    """A SecretStr (or SecretStr | None) setting."""
    return field.annotation is SecretStr or SecretStr in get_args(field.annotation)


# --- every file parses, every variable is documented ------------------------------------


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TF)))
def test_tf_file_parses(path: Path) -> None:
    assert load(path), f"{path} is empty"


def test_layout_one_file_per_concern() -> None:
    expected = {
        "versions.tf",
        "variables.tf",
        "locals.tf",
        "apis.tf",
        "iam.tf",
        "secrets.tf",
        "network.tf",
        "database.tf",
        "registry.tf",
        "storage.tf",
        "ingest.tf",
        "poller.tf",
        "scheduler.tf",
        "api.tf",
        "migrate.tf",
        "cicd.tf",
        "checks.tf",
        "outputs.tf",
    }
    assert {p.name for p in MODULE.glob("*.tf")} == expected
    # Each concern's resources live in its own file.
    where = {
        "google_cloudfunctions2_function": {"ingest.tf", "poller.tf"},
        "google_cloud_run_v2_service": {"api.tf"},
        "google_cloud_run_v2_job": {"migrate.tf"},
        "google_cloud_scheduler_job": {"scheduler.tf"},
        "google_secret_manager_secret": {"secrets.tf"},
        "google_sql_database_instance": {"database.tf"},
        "google_artifact_registry_repository": {"registry.tf"},
    }
    for rtype, files in where.items():
        seen = {
            p.name for p in MODULE.glob("*.tf") for b in load(p).get("resource", []) if rtype in b
        }
        assert seen == files, rtype
    assert {p.name for p in EXAMPLE.glob("*.tf")} >= {"main.tf", "variables.tf", "outputs.tf"}


@pytest.mark.parametrize("folder", [MODULE, EXAMPLE], ids=["module", "example"])
def test_every_variable_has_type_description_and_validation(folder: Path) -> None:
    variables = blocks("variable", folder)
    assert variables
    for name, spec in variables.items():
        assert spec.get("type"), f"variable {name} has no type"
        assert len(spec.get("description", "")) > 10, f"variable {name} has no description"
        assert spec.get("validation"), f"variable {name} has no validation"


def test_providers_are_pinned() -> None:
    for folder in (MODULE, EXAMPLE):
        terraform = one(blocks("terraform", folder)["required_providers"])
        google = terraform["google"]
        assert google["source"] == "hashicorp/google"
        assert re.search(r"[<~]", google["version"]), f"{folder}: google provider is not bounded"
    root = one(blocks("terraform", EXAMPLE)["required_providers"])
    assert root["google"]["version"].startswith("~>"), "the example root pins the provider"
    module_call = blocks("module", EXAMPLE)["flowlens"]
    assert module_call["source"] == "../modules/flowlens"


def test_every_module_variable_without_default_is_given_by_the_example() -> None:
    required = {n for n, spec in blocks("variable").items() if "default" not in spec}
    given = set(blocks("module", EXAMPLE)["flowlens"])
    assert required <= given, required - given
    assert given - {"source"} <= set(blocks("variable")), "example passes an unknown variable"


def test_outputs_include_webhook_and_api_urls() -> None:
    for folder in (MODULE, EXAMPLE):
        outputs = blocks("output", folder)
        assert {"webhook_url", "api_url", "service_names"} <= set(outputs)
        for name, spec in outputs.items():
            assert spec.get("description"), f"output {name} has no description"


# --- the environment of each deployable matches its settings class ----------------------


def _resolve(value: Any, defaults: dict[str, Any]) -> str | None:
    """A literal, or var.X / tostring(var.X) resolved to X's default; None otherwise."""
    if not isinstance(value, str):
        return str(value)
    match = re.fullmatch(r"\$\{(?:tostring\()?var\.(\w+)\)?\}", value)
    if match:
        default = defaults[match.group(1)].get("default")
        if isinstance(default, bool):
            return "true" if default else "false"
        return None if default is None else str(default)
    return None if "${" in value else value


@pytest.mark.parametrize("deployable", sorted(DEPLOYABLES))
def test_env_matches_settings_class(deployable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cls, required = DEPLOYABLES[deployable]
    loc = locals_()
    env: dict[str, Any] = loc[f"{deployable}_env"]
    req_secrets = set(loc[f"{deployable}_required_secrets"])
    opt_secrets = set(loc[f"{deployable}_optional_secrets"])
    fields = settings_fields()

    given = set(env) | req_secrets | opt_secrets
    unknown = given - set(fields)
    assert not unknown, f"{deployable} gets env names that are no Settings field: {unknown}"
    assert required <= set(env) | req_secrets, (
        f"{deployable} requires {required - set(env) - req_secrets} but Terraform always gives "
        "only " + ", ".join(sorted(set(env) | req_secrets))
    )
    assert not set(env) & (req_secrets | opt_secrets), "a name is both plain env and secret"
    for name in req_secrets | opt_secrets:
        assert name in SIX_SECRETS | ALERT_SECRETS, f"{name} is not a Secret Manager secret"
        assert is_secret(fields[name]), f"{name} is not a SecretStr setting"
    for name in env:
        assert not is_secret(fields[name]), f"secret {name} in plain env"

    # The literal values (and variable defaults) are ones the settings class accepts.
    defaults = blocks("variable")
    values = {k: _resolve(v, defaults) for k, v in env.items()}
    for name in fields:
        monkeypatch.delenv(name, raising=False)
    for name in req_secrets:
        values[name] = "postgresql://u:p@db:5432/flowlens" if name == "DATABASE_URL" else "x"
    parsed = cls.from_env(**{k.lower(): v for k, v in values.items() if v is not None})
    assert isinstance(parsed, cls)


def test_deployables_wire_exactly_those_locals() -> None:
    functions = resources("google_cloudfunctions2_function")
    for name in ("ingest", "poller"):
        svc = one(functions[name]["service_config"])
        assert svc["environment_variables"] == (
            f"${{merge(local.{name}_env, var.extra_env.{name}, local.functions_framework_env)}}"
        )
        (secret_block,) = dynamic(svc, "secret_environment_variables")
        assert secret_block["for_each"] == f"${{local.{name}_secrets}}"
    api = one(one(resources("google_cloud_run_v2_service")["api"]["template"])["containers"])
    job_template = one(one(resources("google_cloud_run_v2_job")["migrate"]["template"])["template"])
    job = one(job_template["containers"])
    for name, container, plain in (
        ("api", api, "${merge(local.api_env, var.extra_env.api)}"),
        ("migrate", job, "${local.migrate_env}"),
    ):
        assert [d["for_each"] for d in dynamic(container, "env")] == [
            plain,
            f"${{local.{name}_secrets}}",
        ]
        assert "env" not in container, "plain env blocks bypass the checked locals"
    loc = locals_()
    for name in ("ingest", "poller", "api"):
        expr = loc[f"{name}_secrets"]
        assert f"local.{name}_required_secrets" in expr and f"local.{name}_optional_secrets" in expr


def test_extra_env_admits_only_tunable_non_secret_settings() -> None:
    loc = locals_()
    tunable = set(loc["tunable_settings"])
    fields = settings_fields()
    assert tunable <= set(fields), tunable - set(fields)
    assert not any(is_secret(fields[n]) for n in tunable), "secrets go to Secret Manager"
    for name in ("ingest", "poller", "api"):
        assert not tunable & set(loc[f"{name}_env"]), f"{name}: extra_env may not override"
    guarded = {
        "ingest": resources("google_cloudfunctions2_function")["ingest"],
        "poller": resources("google_cloudfunctions2_function")["poller"],
        "api": resources("google_cloud_run_v2_service")["api"],
    }
    for name, resource in guarded.items():
        conditions = [p["condition"] for p in one(resource["lifecycle"])["precondition"]]
        assert f'${{local.extra_env_ok["{name}"]}}' in conditions, name


def test_functions_framework_env_is_only_its_own_switches() -> None:
    framework = locals_()["functions_framework_env"]
    assert set(framework) == FRAMEWORK_ENV
    assert not FRAMEWORK_ENV & set(settings_fields()), "a framework switch shadows a setting"
    assert framework["LOG_EXECUTION_ID"] == "false"


def test_all_six_secrets_live_in_secret_manager() -> None:
    loc = locals_()
    assert set(loc["secret_names"]) == SIX_SECRETS | ALERT_SECRETS
    assert "google_secret_manager_secret" in {
        k for p in MODULE.glob("*.tf") for b in load(p).get("resource", []) for k in b
    }
    assert resources("google_secret_manager_secret")["secret"]["for_each"] == "${local.secret_ids}"


# --- shape of the deployment -------------------------------------------------------------


def test_function_targets_exist_in_their_entry_points() -> None:
    assert function_targets() == FUNCTION_TARGETS
    for bundle, target in FUNCTION_TARGETS.items():
        main = ROOT / "functions" / bundle / "main.py"
        if not main.exists():  # written by another change; test_bundles loads it for real
            continue
        tree = ast.parse(main.read_text("utf-8"))
        defined = {
            n.name for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)
        }
        assert target in defined, f"functions/{bundle}/main.py defines no {target}()"


def test_ingest_is_public_and_poller_is_private() -> None:
    members = resources("google_cloud_run_v2_service_iam_member")
    public = {m["name"] for m in members.values() if m["member"] == "allUsers"}
    assert public == {
        "${google_cloudfunctions2_function.ingest.name}",
        "${google_cloud_run_v2_service.api.name}",
    }
    invokers = [m for m in members.values() if "poller" in m["name"]]
    # The scheduler ticks it; ingest wakes it (pay-per-use). Nobody else.
    assert sorted(m["member"] for m in invokers) == [
        '${google_service_account.sa["ingest"].member}',
        '${google_service_account.sa["scheduler"].member}',
    ]
    functions = resources("google_cloudfunctions2_function")
    assert one(functions["ingest"]["build_config"])["runtime"] == "${var.function_runtime}"


def test_poller_timeout_above_budget_and_bounded() -> None:
    svc = one(resources("google_cloudfunctions2_function")["poller"]["service_config"])
    assert svc["timeout_seconds"] == "${var.poller_timeout_seconds}"
    assert svc["max_instance_count"] == "${var.poller_max_instances}"
    defaults = blocks("variable")
    assert (
        defaults["poller_timeout_seconds"]["default"] > defaults["poll_budget_seconds"]["default"]
    )
    lifecycle = one(resources("google_cloudfunctions2_function")["poller"]["lifecycle"])
    conditions = " ".join(p["condition"] for p in lifecycle["precondition"])
    assert "var.poller_timeout_seconds > var.poll_budget_seconds" in conditions


def test_scheduler_every_minute_with_its_own_oidc_identity() -> None:
    job = resources("google_cloud_scheduler_job")["poller"]
    assert blocks("variable")["poller_schedule"]["default"] == "* * * * *"
    target = one(job["http_target"])
    oidc = one(target["oidc_token"])
    assert oidc["service_account_email"] == '${google_service_account.sa["scheduler"].email}'
    assert "poller" in target["uri"]


def test_api_service_settings_for_websockets() -> None:
    api = resources("google_cloud_run_v2_service")["api"]
    template = one(api["template"])
    assert template["timeout"] == "${var.api_timeout_seconds}s"
    assert blocks("variable")["api_timeout_seconds"]["default"] == 3600
    assert template["session_affinity"] is True
    assert template["max_instance_request_concurrency"] == "${var.api_concurrency}"
    scaling = one(template["scaling"])
    assert scaling["min_instance_count"] == "${var.api_min_instances}"
    assert scaling["max_instance_count"] == "${var.api_max_instances}"


def test_one_service_account_per_deployable() -> None:
    accounts = resources("google_service_account")["sa"]["for_each"]
    assert {"ingest", "poller", "api", "migrate", "scheduler"} <= set(accounts)
    for rtype, key in (
        ("google_cloudfunctions2_function", "ingest"),
        ("google_cloudfunctions2_function", "poller"),
    ):
        svc = one(resources(rtype)[key]["service_config"])
        assert svc["service_account_email"] == f'${{google_service_account.sa["{key}"].email}}'
    # Runtime accounts get no project-wide role: secrets are bound one by one.
    project_roles = resources("google_project_iam_member")
    for binding in project_roles.values():
        assert "builder" in binding["member"] or "deployer" in binding["member"]


def test_database_modes() -> None:
    db = resources("google_sql_database_instance")["db"]
    settings = one(db["settings"])
    ip = one(settings["ip_configuration"])
    assert ip["ipv4_enabled"] is False
    backup = one(settings["backup_configuration"])
    assert backup["enabled"] is True and backup["point_in_time_recovery_enabled"] is True
    assert "cloudsql" in db["count"]
    mode = blocks("variable")["database_mode"]
    assert "external" in one(mode["validation"])["condition"]


def test_migrations_run_as_a_job() -> None:
    job = resources("google_cloud_run_v2_job")["migrate"]
    container = one(one(one(job["template"])["template"])["containers"])
    assert container["command"] == ["flowlens"] and container["args"] == ["migrate"]


# --- the database connection budget counts every connection the code opens --------------

PACKAGE = ROOT / "shared"
# Functions that open a connection outside a Database pool (Database.connect), and the
# deployable each one runs in. db_connection_budget must count each per instance.
OUTSIDE_POOL = {
    "flowlens/api/feed.py:_listen": "api",  # LISTEN_CONNECTIONS, while feed_notify is on
    "flowlens/db/database.py:migrate": "migrate",  # the job's only connection
}


def outside_pool_callers() -> set[str]:
    """module:function of every call to Database.connect (psycopg's own connect excluded)."""
    found = set()
    for path in sorted((PACKAGE / "flowlens").rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        for fn in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "connect"
                    and not ast.unparse(node.func.value).startswith("psycopg")
                ):
                    found.add(f"{module}:{fn.name}")
    return found


def plus_terms(expression: str) -> list[str]:
    """The top-level `+` terms of an HCL expression as python-hcl2 gives it."""
    body = expression.removeprefix("${").removesuffix("}").strip()
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "+" and depth == 0:
            terms.append(body[start:i].strip())
            start = i + 1
    terms.append(body[start:].strip())
    if len(terms) == 1 and body.startswith("(") and body.endswith(")"):
        return plus_terms(body[1:-1])
    return terms


def test_connection_budget_counts_connections_outside_the_pools() -> None:
    assert outside_pool_callers() == set(OUTSIDE_POOL), (
        "Database.connect callers changed: count their connections in db_connection_budget "
        "(locals.tf) and docs/DEPLOY.md, then update OUTSIDE_POOL"
    )
    loc = locals_()
    assert loc.get("api_listen_connections") == f"${{var.feed_notify ? {LISTEN_CONNECTIONS} : 0}}"
    per_instance = {
        "ingest": "var.ingest_db_pool_max",
        "poller": "var.poller_db_pool_max",
        "api": "(var.api_db_pool_max + local.api_listen_connections)",
    }
    expected = [f"var.{name}_max_instances * {conns}" for name, conns in per_instance.items()]
    expected.append("1")  # the migration job
    assert sorted(plus_terms(loc["db_connection_budget"])) == sorted(expected)
    db = resources("google_sql_database_instance")["db"]
    conditions = [p["condition"] for p in one(db["lifecycle"])["precondition"]]
    assert "${local.db_connection_budget < var.db_max_connections - 3}" in conditions


def test_connection_budget_at_the_defaults_fits_cloud_sql_as_documented() -> None:
    module = {name: spec.get("default") for name, spec in blocks("variable").items()}
    example = {name: spec.get("default") for name, spec in blocks("variable", EXAMPLE).items()}
    call = blocks("module", EXAMPLE)["flowlens"]
    var = {
        name: example[name] if call.get(name) == f"${{var.{name}}}" else default
        for name, default in module.items()
    }
    listen = LISTEN_CONNECTIONS if var["feed_notify"] else 0
    budget = (
        var["ingest_max_instances"] * var["ingest_db_pool_max"]
        + var["poller_max_instances"] * var["poller_db_pool_max"]
        + var["api_max_instances"] * (var["api_db_pool_max"] + listen)
        + 1
    )
    assert budget < var["db_max_connections"] - 3
    deploy = " ".join((ROOT / "docs" / "DEPLOY.md").read_text("utf-8").split())
    times = "\N{MULTIPLICATION SIGN}"
    worked = (
        f"{var['ingest_max_instances']}{times}{var['ingest_db_pool_max']}"
        f" + {var['poller_max_instances']}{times}{var['poller_db_pool_max']}"
        f" + {var['api_max_instances']}{times}({var['api_db_pool_max']}+{listen}) + 1 = {budget}"
    )
    assert worked in deploy, f"docs/DEPLOY.md should show {worked}"


# --- checkov skips carry their reason ------------------------------------------------------

_SKIP = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_every_checkov_skip_is_justified() -> None:
    files = [*TF_FILES, ROOT / "services" / "api" / "Dockerfile"]
    skips = []
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text("utf-8").splitlines():
            match = _SKIP.search(line)
            if match:
                skips.append((path.name, match.group(1), (match.group(2) or "").strip()))
    assert skips, "expected the documented skips"
    for name, check, reason in skips:
        assert len(reason) >= 40, f"{name}: skip of {check} needs a reason beside it"
    config = yaml.safe_load((ROOT / ".checkov.yaml").read_text("utf-8"))
    assert "skip-check" not in config, "skips belong inline, beside the resource, with a reason"


# --- cloudbuild.yaml ------------------------------------------------------------------------


def test_cloudbuild_runs_the_pipeline_in_order() -> None:
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text("utf-8"))
    ids = [step["id"] for step in build["steps"]]
    order = ["test", "build-api", "push-api", "bundle", "migrate-job", "migrate", "deploy"]
    positions = [ids.index(step) for step in order]
    assert positions == sorted(positions), ids
    for step in build["steps"]:
        assert "waitFor" not in step or step["waitFor"] != ["-"], f"{step['id']} runs early"
        script = " ".join(str(a) for a in step.get("args", [])) + step.get("script", "")
        if step.get("entrypoint") in {"bash", "sh"}:
            assert "set -e" in script, f"step {step['id']} does not stop on errors"
    assert "${_REGION}" in str(build) and "_TF_STATE_BUCKET" in build["substitutions"]


def cloudbuild() -> dict[str, Any]:
    build: dict[str, Any] = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text("utf-8"))
    return build


def step_text(step: dict[str, Any]) -> str:
    return "\n".join(str(a) for a in step.get("args", [])) + str(step.get("script", ""))


def substitutions_in(text: str, substitutions: dict[str, str]) -> set[str]:
    """Substitutions text uses, and those their values use in turn."""
    found: set[str] = set()
    todo = re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", text)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", str(substitutions.get(name, "")))
    return found


# Substitutions that reach Terraform other than as a -var: the image, by digest (with its
# build tag), and the state bucket, as backend config.
NOT_TF_VARS = {"_IMAGE", "BUILD_ID", "_TF_STATE_BUCKET"}


def test_cloudbuild_passes_terraform_every_substitution_the_other_steps_use() -> None:
    build = cloudbuild()
    tf_steps = [s for s in build["steps"] if s["name"].startswith("hashicorp/terraform")]
    others = "\n".join(step_text(s) for s in build["steps"] if s not in tf_steps)
    wanted = substitutions_in(others, build["substitutions"]) - NOT_TF_VARS
    assert {"PROJECT_ID", "_REGION", "_PREFIX"} <= wanted
    commands = [
        " ".join(line.split())
        for step in tf_steps
        for line in step_text(step).replace("\\\n", " ").splitlines()
        if line.strip().startswith("terraform ")
    ]
    applies = [c for c in commands if c.startswith("terraform apply")]
    inits = [c for c in commands if c.startswith("terraform init")]
    assert applies and inits
    example_vars = blocks("variable", EXAMPLE)
    call = blocks("module", EXAMPLE)["flowlens"]
    for command in applies:
        given = dict(re.findall(r'-var="(\w+)=\$\{(\w+)\}"', command))
        missing = wanted - set(given.values())
        assert not missing, f"{command} does not pass {sorted(missing)}"
        for var in given:
            assert var in example_vars and call.get(var) == f"${{var.{var}}}", var
    for command in inits:
        assert '-backend-config="bucket=${_TF_STATE_BUCKET}"' in command
        # A state per prefix: a deployment with another prefix never replaces this one.
        assert '-backend-config="prefix=${_PREFIX}"' in command


def test_ingest_names_its_project_for_trace_names() -> None:
    """Ingest's log lines carry Cloud Logging's trace name, which needs the project id; the
    functions runtime does not set GOOGLE_CLOUD_PROJECT."""
    assert locals_()["ingest_env"]["GOOGLE_CLOUD_PROJECT"] == "${var.project_id}"


def test_the_example_root_takes_what_deploy_md_says_to_set_in_tfvars() -> None:
    """DEPLOY.md tells users to set these in terraform.tfvars: an undeclared one is dropped
    with only a warning, which would leave alerts and sync silently off."""
    deploy = (ROOT / "docs" / "DEPLOY.md").read_text("utf-8")
    example_vars = blocks("variable", EXAMPLE)
    call = blocks("module", EXAMPLE)["flowlens"]
    for name in ("extra_env", "feed_notify", "secret_versions", "optional_secrets", "api_public",
                 "allow_public_api_without_tokens"):  # fmt: skip
        assert f"`{name}" in deploy, name
        assert name in example_vars and call.get(name) == f"${{var.{name}}}", name


# --- deployment defaults a security review asked about (docs/SECURITY.md) --------------------


def hcl_bool(expression: str, terms: dict[str, bool]) -> bool:
    """A condition made of the given terms, `!`, `&&`, `||` and parentheses, evaluated."""
    body = expression.removeprefix("${").removesuffix("}")
    for term, truth in sorted(terms.items(), key=lambda t: -len(t[0])):
        body = body.replace(term, f" {truth} ")
    body = body.replace("||", " or ").replace("&&", " and ").replace("!", " not ")

    def evaluate(node: ast.expr) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not evaluate(node.operand)
        if isinstance(node, ast.BoolOp):
            values = [evaluate(v) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        raise AssertionError(f"unknown terms in {expression}: {ast.unparse(node)}")

    return evaluate(ast.parse(body.strip(), mode="eval").body)


def test_a_public_api_needs_api_tokens_or_an_explicit_yes() -> None:
    """allUsers may invoke the API when api_public is on; without API_TOKENS it then serves
    every pull request, insight and build to anyone, so the plan fails unless asked for."""
    variables = blocks("variable")
    assert variables["api_public"]["default"] is True
    assert variables["allow_public_api_without_tokens"]["default"] is False
    public = resources("google_cloud_run_v2_service_iam_member")["api_public"]
    assert public["count"] == "${var.api_public ? 1 : 0}" and public["member"] == "allUsers"
    loc = locals_()
    assert "API_TOKENS" in loc["api_optional_secrets"]  # reaches the API only as a secret
    assert "API_TOKENS" not in loc["api_env"]

    api = resources("google_cloud_run_v2_service")["api"]
    (guard,) = [
        p["condition"]
        for p in one(api["lifecycle"])["precondition"]
        if "var.api_public" in p["condition"]
    ]
    for public_, allowed, tokens in (
        (a, b, c) for a in (True, False) for b in (True, False) for c in (True, False)
    ):
        terms = {
            "var.api_public": public_,
            "var.allow_public_api_without_tokens": allowed,
            'contains(local.api_secrets, "API_TOKENS")': tokens,
        }
        assert hcl_bool(guard, terms) == (not public_ or allowed or tokens), terms

    # The example root's defaults (no optional secrets) are refused until tokens are added.
    example = blocks("variable", EXAMPLE)
    assert example["optional_secrets"]["default"] == []
    assert example["api_public"]["default"] is True
    assert example["allow_public_api_without_tokens"]["default"] is False


def _dsn_format() -> tuple[str, list[str]]:
    """cloudsql_dsn's format string and its argument expressions."""
    expr = locals_()["cloudsql_dsn"]
    match = re.search(r'format\(\s*"([^"]+)",(.*)\)\s*:\s*""', expr, re.DOTALL)
    assert match, expr
    return match.group(1), [a.strip() for a in match.group(2).split(",") if a.strip()]


def test_cloudsql_connections_verify_the_server_certificate() -> None:
    """The deployables reach Cloud SQL over TCP at its private IP (no Auth Proxy): with
    sslmode=require anything on that path could pose as the database."""
    from psycopg.conninfo import conninfo_to_dict

    loc = locals_()
    template, args = _dsn_format()
    assert "sslmode=require" not in template
    assert args[-2:] == ["local.db_ca_dir", "local.db_ca_file"]
    values = ["flowlens", "pw", "10.1.2.3", "flowlens", loc["db_ca_dir"], loc["db_ca_file"]]
    dsn = template.replace("%s", "{}").format(*values)
    params = conninfo_to_dict(dsn)
    assert params["sslmode"] == "verify-ca"
    assert params["sslrootcert"] == f"{loc['db_ca_dir']}/{loc['db_ca_file']}"
    assert ApiSettings.from_env(database_url=dsn).dsn == dsn

    # verify-ca pins the instance only while its CA signs for it alone.
    db = resources("google_sql_database_instance")["db"]
    ip = one(one(db["settings"])["ip_configuration"])
    assert ip["ssl_mode"] == "ENCRYPTED_ONLY"
    assert ip["server_ca_mode"] == "GOOGLE_MANAGED_INTERNAL_CA"
    # Every CA the instance lists (a rotation's upcoming one too) goes into the file.
    assert "data.google_sql_ca_certs.db[0].certs" in loc["db_ca_pem"]
    version = resources("google_secret_manager_secret_version")["db_ca"]
    assert version["secret_data"] == "${local.db_ca_pem}"

    # Every deployable that connects mounts the file where the DSN says, and may read it.
    connects = {
        name
        for name in DEPLOYABLES
        if "DATABASE_URL" in loc[f"{name}_required_secrets"] + loc[f"{name}_optional_secrets"]
    }
    assert set(loc["db_ca_readers"]) == connects == set(DEPLOYABLES)
    access = resources("google_secret_manager_secret_iam_member")["db_ca"]
    assert access["for_each"] == "${local.cloudsql ? toset(local.db_ca_readers) : toset([])}"
    assert access["member"] == "${google_service_account.sa[each.value].member}"
    secret = "${google_secret_manager_secret.db_ca[0].secret_id}"
    for name, fn in resources("google_cloudfunctions2_function").items():
        (volume,) = dynamic(one(fn["service_config"]), "secret_volumes")
        assert volume["for_each"] == "${google_secret_manager_secret_version.db_ca}", name
        content = one(volume["content"])
        assert content["mount_path"] == "${local.db_ca_dir}" and content["secret"] == secret
        assert one(content["versions"])["path"] == "${local.db_ca_file}", name
    api = one(resources("google_cloud_run_v2_service")["api"]["template"])
    job = one(one(resources("google_cloud_run_v2_job")["migrate"]["template"])["template"])
    for name, template_ in (("api", api), ("migrate", job)):
        (volume,) = dynamic(template_, "volumes")
        content = one(volume["content"])
        assert one(content["secret"])["secret"] == secret, name
        assert one(one(content["secret"])["items"])["path"] == "${local.db_ca_file}", name
        (mount,) = dynamic(one(template_["containers"]), "volume_mounts")
        mounted = one(mount["content"])
        assert mounted["name"] == content["name"], name
        assert mounted["mount_path"] == "${local.db_ca_dir}", name
        assert volume["for_each"] == mount["for_each"], name


def test_the_deployer_may_grant_only_the_builders_project_roles() -> None:
    """Unconditional projectIamAdmin lets the deployer make anyone, itself included, owner."""
    loc = locals_()
    roles: dict[str, str] = loc["deployer_project_roles"]
    powerful = {
        "roles/owner",
        "roles/editor",
        "roles/resourcemanager.projectIamAdmin",
        "roles/iam.securityAdmin",
        "roles/iam.roleAdmin",
    }
    unconditional = {role for role, condition in roles.items() if not condition}
    assert not unconditional & powerful, unconditional & powerful
    condition = roles["roles/resourcemanager.projectIamAdmin"]
    assert condition == (
        "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', [])"
        ".hasOnly(${jsonencode(local.builder_project_roles)})"
    )
    # The roles it may grant are exactly the project-level grants the module makes.
    project_grants = resources("google_project_iam_member")
    assert set(project_grants) == {"builder", "deployer"}
    assert project_grants["builder"]["for_each"] == "${toset(local.builder_project_roles)}"
    assert set(loc["builder_project_roles"]) == {
        "roles/logging.logWriter",
        "roles/artifactregistry.writer",
    }
    deployer = project_grants["deployer"]
    assert deployer["for_each"] == "${var.create_deployer ? local.deployer_project_roles : {}}"
    (cond,) = dynamic(deployer, "condition")
    assert cond["for_each"] == '${each.value == "" ? [] : [each.value]}'
    assert one(cond["content"])["expression"] == "${condition.value}"
    assert one(deployer["lifecycle"])["create_before_destroy"] is True
