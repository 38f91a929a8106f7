"""`flowlens cloud status`: is every deployed Cloud Run service ready, and what serves traffic."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.cloud.run_v2 import ServicesClient

# Names Terraform gives the three deployables (infra/terraform: "${name_prefix}-<part>").
# Cloud Run functions gen2 run as Cloud Run services of the same name.
DEPLOYABLES = ("api", "ingest", "poller")
DEFAULT_PREFIX = "flowlens"

_SUCCEEDED = "CONDITION_SUCCEEDED"
_FAILED = "CONDITION_FAILED"


def default_services(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Cloud Run service names of the API and both functions for a name prefix."""
    return [f"{prefix}-{part}" for part in DEPLOYABLES]


def make_client(api_endpoint: str | None = None, credentials: Any = None) -> ServicesClient:
    """A Cloud Run Admin API v2 ServicesClient over REST (application default credentials)."""
    from google.api_core.client_options import ClientOptions
    from google.cloud.run_v2 import ServicesClient

    options = ClientOptions(api_endpoint=api_endpoint) if api_endpoint else None
    return ServicesClient(credentials=credentials, transport="rest", client_options=options)


def _short(resource_name: str) -> str:
    """Last path segment of a resource name (revisions come back fully qualified)."""
    return resource_name.rsplit("/", 1)[-1] if resource_name else ""


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


def _traffic_line(service: Any) -> str:
    parts = []
    for status in service.traffic_statuses:
        if _enum_name(status.type_).endswith("_LATEST"):
            target = "latest"
            if status.revision:
                target += f" ({_short(status.revision)})"
        else:
            target = _short(status.revision) or "?"
        if status.tag:
            target += f" tag={status.tag}"
        parts.append(f"{status.percent}% {target}")
    return ", ".join(parts) if parts else "none"


def _describe(name: str, service: Any) -> tuple[list[str], bool]:
    """Report lines for one service and whether it is ready."""
    problems: list[str] = []
    terminal = service.terminal_condition
    terminal_state = _enum_name(terminal.state) if terminal else ""
    if terminal_state != _SUCCEEDED:
        detail = terminal.message or terminal.reason or terminal_state or "no terminal condition"
        problems.append(f"{terminal.type_ or 'Ready'}: {detail} [{terminal_state or 'UNKNOWN'}]")
    for cond in service.conditions:
        if _enum_name(cond.state) == _FAILED:
            detail = cond.message or _enum_name(cond.reason) or "failed"
            problems.append(f"{cond.type_}: {detail} [{_FAILED}]")
    ready_rev = _short(service.latest_ready_revision)
    created_rev = _short(service.latest_created_revision)
    if not ready_rev:
        problems.append("no revision is ready")
    elif created_rev and created_rev != ready_rev:
        state = "still rolling out" if service.reconciling else "is not ready"
        problems.append(f"latest created revision {created_rev} {state}")
    ok = not problems
    lines = [
        f"{name}: {'READY' if ok else 'NOT READY'}",
        f"  url: {service.uri or '-'}",
        f"  latest ready revision: {ready_rev or '-'}",
        f"  traffic: {_traffic_line(service)}",
    ]
    lines += [f"  failing: {p}" for p in problems]
    return lines, ok


def cloud_status(
    project: str, region: str, services: list[str], client: ServicesClient | None = None
) -> tuple[list[str], bool]:
    """Report URL, latest ready revision, traffic and failing conditions of each service."""
    from google.api_core import exceptions as gexc

    client = client if client is not None else make_client()
    lines: list[str] = []
    all_ok = True
    for name in services:
        resource = f"projects/{project}/locations/{region}/services/{name}"
        try:
            service = client.get_service(name=resource)
        except gexc.NotFound:
            lines += [f"{name}: NOT FOUND", f"  failing: no Cloud Run service {resource}"]
            all_ok = False
            continue
        except gexc.GoogleAPICallError as exc:
            lines += [f"{name}: ERROR", f"  failing: {exc.code} {exc.message}"]
            all_ok = False
            continue
        service_lines, ok = _describe(name, service)
        lines += service_lines
        all_ok = all_ok and ok
    return lines, all_ok


def _status_command(args: argparse.Namespace) -> int:
    from google.auth.exceptions import GoogleAuthError

    if not args.project:
        print(
            "flowlens cloud status: --project (or GOOGLE_CLOUD_PROJECT) is required",
            file=sys.stderr,
        )
        return 2
    services = args.services or default_services(args.prefix)
    try:
        client = make_client(args.api_endpoint)
        lines, ok = cloud_status(args.project, args.region, services, client=client)
    except GoogleAuthError as exc:
        print(f"flowlens cloud status: no Google credentials: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    summary = "all ready" if ok else "some services are not ready"
    print(f"{len(services)} service(s) in {args.project}/{args.region}: {summary}")
    return 0 if ok else 1


def add_cloud_commands(subparsers: Any) -> None:
    """Register `cloud status` on the `flowlens` command's subparsers."""
    cloud = subparsers.add_parser("cloud", help="inspect the Google Cloud deployment")
    cloud_sub = cloud.add_subparsers(dest="cloud_command", required=True)
    status = cloud_sub.add_parser(
        "status",
        help="readiness, URL, revision and traffic of the API and both functions",
        description="Exit status: 1 when a service is not ready, 2 on a usage or credential error.",
    )
    status.add_argument(
        "--project",
        default=os.environ.get("GOOGLE_CLOUD_PROJECT"),
        help="Google Cloud project id (default: $GOOGLE_CLOUD_PROJECT)",
    )
    status.add_argument("--region", required=True, help="region the services run in")
    status.add_argument(
        "--service",
        dest="services",
        action="append",
        metavar="NAME",
        help="Cloud Run service to check (repeatable; default: <prefix>-api, -ingest, -poller)",
    )
    status.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help="Terraform's name_prefix (default: flowlens)"
    )
    status.add_argument(
        "--api-endpoint", default=None, help="Cloud Run Admin API endpoint (default: Google's)"
    )
    status.set_defaults(func=_status_command)
