"""`flowlens cloud status` drives the real google-cloud-run REST client against a local fake API."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from google.auth.credentials import AnonymousCredentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from flowlens import cloud

PROJECT, REGION = "demo-project", "europe-west1"
PREFIX = f"projects/{PROJECT}/locations/{REGION}/services"


def _service(
    name: str,
    *,
    ready: str = "r1",
    created: str | None = None,
    terminal: str = "CONDITION_SUCCEEDED",
    conditions: list[dict[str, Any]] | None = None,
    traffic: list[dict[str, Any]] | None = None,
    reconciling: bool = False,
) -> dict[str, Any]:
    """A Service resource as the Cloud Run Admin API v2 returns it (camelCase JSON)."""
    full = f"{PREFIX}/{name}"
    return {
        "name": full,
        "uri": f"https://{name}-abc123-ew.a.run.app",
        "latestReadyRevision": f"{full}/revisions/{name}-{ready}" if ready else "",
        "latestCreatedRevision": f"{full}/revisions/{name}-{created or ready}",
        "reconciling": reconciling,
        "terminalCondition": {"type": "Ready", "state": terminal, "message": "", "reason": ""},
        "conditions": conditions or [],
        "trafficStatuses": traffic
        if traffic is not None
        else [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
    }


class FakeRunAdmin:
    """Just enough of run.googleapis.com/v2 for GetService, served by uvicorn on loopback."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.app = Starlette(
            routes=[
                Route(
                    "/v2/projects/{project}/locations/{location}/services/{service}",
                    self.get_service,
                )
            ]
        )

    async def get_service(self, request: Request) -> JSONResponse:
        self.requests.append(request.url.path)
        if request.path_params["project"] == "forbidden":
            return JSONResponse(
                {
                    "error": {
                        "code": 403,
                        "message": "Permission denied",
                        "status": "PERMISSION_DENIED",
                    }
                },
                status_code=403,
            )
        key = request.path_params["service"]
        if key not in self.services or request.path_params["project"] != PROJECT:
            return JSONResponse(
                {"error": {"code": 404, "message": f"{key} not found", "status": "NOT_FOUND"}},
                status_code=404,
            )
        return JSONResponse(self.services[key])


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeRunAdmin, str]]:
    admin = FakeRunAdmin()
    config = uvicorn.Config(
        admin.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake Cloud Run Admin API did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield admin, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def admin(fake: tuple[FakeRunAdmin, str]) -> FakeRunAdmin:
    fake[0].services.clear()
    fake[0].requests.clear()
    return fake[0]


@pytest.fixture
def client(fake: tuple[FakeRunAdmin, str]) -> Any:
    return cloud.make_client(api_endpoint=fake[1], credentials=AnonymousCredentials())


def test_all_ready_reports_url_revision_and_traffic(admin: FakeRunAdmin, client: Any) -> None:
    for name in cloud.default_services():
        admin.services[name] = _service(name, ready="00003-xyz")
    lines, ok = cloud.cloud_status(PROJECT, REGION, cloud.default_services(), client=client)
    assert ok, lines
    text = "\n".join(lines)
    assert "flowlens-api: READY" in text
    assert "url: https://flowlens-ingest-abc123-ew.a.run.app" in text
    assert "latest ready revision: flowlens-poller-00003-xyz" in text
    assert "traffic: 100% latest" in text
    assert "failing" not in text
    # The real client really went over HTTP, once per service.
    assert admin.requests == [f"/v2/{PREFIX}/{n}" for n in cloud.default_services()]


def test_split_traffic_is_reported(admin: FakeRunAdmin, client: Any) -> None:
    admin.services["flowlens-api"] = _service(
        "flowlens-api",
        ready="00004-new",
        traffic=[
            {
                "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                "revision": "flowlens-api-00003-old",
                "percent": 90,
            },
            {
                "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                "revision": "flowlens-api-00004-new",
                "percent": 10,
                "tag": "canary",
            },
        ],
    )
    lines, ok = cloud.cloud_status(PROJECT, REGION, ["flowlens-api"], client=client)
    assert ok, lines
    assert "  traffic: 90% flowlens-api-00003-old, 10% flowlens-api-00004-new tag=canary" in lines


def test_failed_rollout_is_not_ready_and_names_the_condition(
    admin: FakeRunAdmin, client: Any
) -> None:
    admin.services["flowlens-api"] = _service("flowlens-api")
    admin.services["flowlens-ingest"] = _service(
        "flowlens-ingest",
        ready="00001-aaa",
        created="00002-bbb",
        terminal="CONDITION_FAILED",
        conditions=[
            {
                "type": "ConfigurationsReady",
                "state": "CONDITION_FAILED",
                "message": "Revision 'flowlens-ingest-00002-bbb' is not ready: container failed "
                "to start and listen on PORT=8080",
            }
        ],
    )
    lines, ok = cloud.cloud_status(
        PROJECT, REGION, ["flowlens-api", "flowlens-ingest"], client=client
    )
    assert not ok
    text = "\n".join(lines)
    assert "flowlens-api: READY" in text
    assert "flowlens-ingest: NOT READY" in text
    assert "latest ready revision: flowlens-ingest-00001-aaa" in text
    assert "ConfigurationsReady: Revision 'flowlens-ingest-00002-bbb' is not ready" in text
    assert "latest created revision flowlens-ingest-00002-bbb is not ready" in text


def test_rollout_in_progress_is_not_ready(admin: FakeRunAdmin, client: Any) -> None:
    admin.services["flowlens-poller"] = _service(
        "flowlens-poller",
        ready="",
        created="00001-new",
        terminal="CONDITION_RECONCILING",
        reconciling=True,
    )
    lines, ok = cloud.cloud_status(PROJECT, REGION, ["flowlens-poller"], client=client)
    assert not ok
    assert "  failing: no revision is ready" in lines
    assert any("CONDITION_RECONCILING" in line for line in lines)


def test_missing_service_and_api_errors_are_not_ready(admin: FakeRunAdmin, client: Any) -> None:
    lines, ok = cloud.cloud_status(PROJECT, REGION, ["flowlens-api"], client=client)
    assert not ok
    assert lines[0] == "flowlens-api: NOT FOUND"
    lines, ok = cloud.cloud_status("forbidden", REGION, ["flowlens-api"], client=client)
    assert not ok
    assert lines[0] == "flowlens-api: ERROR"
    assert "403" in lines[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowlens")
    cloud.add_cloud_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_exit_status(
    admin: FakeRunAdmin,
    fake: tuple[FakeRunAdmin, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_make_client = cloud.make_client

    def anonymous_client(api_endpoint: str | None = None, credentials: Any = None) -> Any:
        assert api_endpoint == fake[1]
        return real_make_client(api_endpoint, AnonymousCredentials())

    monkeypatch.setattr(cloud, "make_client", anonymous_client)
    argv = ["cloud", "status", "--project", PROJECT, "--region", REGION, "--api-endpoint", fake[1]]
    for name in cloud.default_services():
        admin.services[name] = _service(name)
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    assert "3 service(s) in demo-project/europe-west1: all ready" in capsys.readouterr().out

    admin.services["flowlens-poller"] = _service("flowlens-poller", terminal="CONDITION_FAILED")
    args = _parser().parse_args(argv)
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "flowlens-poller: NOT READY" in out
    assert "some services are not ready" in out

    args = _parser().parse_args([*argv, "--prefix", "other", "--service", "flowlens-api"])
    assert args.func(args) == 0


def test_cli_requires_project(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    args = _parser().parse_args(["cloud", "status", "--region", REGION])
    assert args.func(args) == 2
    assert "--project" in capsys.readouterr().err
