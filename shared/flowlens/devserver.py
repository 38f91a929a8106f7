"""`flowlens dev`: the whole system on one machine, one log stream, Ctrl-C stops it all."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import importlib.util
import ipaddress
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import IO, Any

import uvicorn

from flowlens import logs
from flowlens.api.server import wait_started
from flowlens.devdb import kept_secret
from flowlens.settings import Settings

log = logging.getLogger("flowlens.dev")


class PortInUse(SystemExit):
    """A port FlowLens wants is taken; the message names the variable to change."""


class FolderInUse(SystemExit):
    """Another `flowlens dev` runs on the same state folder (and its database)."""


class BadHost(SystemExit):
    """DEV_HOST is not an address this machine can listen on."""


def claim_folder(folder: Path) -> IO[str]:
    """Hold the state folder for this process: an exclusive lock on dev.pid (with our pid in
    it), kept until the process ends, however it ends. The operating system drops the lock of
    a run that was killed, so a pid file left behind never blocks the next run."""
    handle = (folder / "dev.pid").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise FolderInUse(
            f"flowlens: another flowlens dev (pid {holder}) is using {folder}; stop it first,"
            " or set FLOWLENS_HOME to another folder"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def project_root() -> Path:
    """The checkout (where functions/ and services/ live)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "functions" / "ingest" / "main.py").exists():
            return parent
    return Path.cwd()


def state_dir(root: Path) -> Path:
    """.flowlens/ beside the checkout (or FLOWLENS_HOME): database files, generated secrets.
    Made 0700, and an existing one tightened to it (as root, devdb then lets the database's
    user through)."""
    path = Path(os.environ.get("FLOWLENS_HOME") or root / ".flowlens")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def webhook_secret(folder: Path) -> str:
    """GITHUB_WEBHOOK_SECRET, or one generated once and kept in .flowlens/webhook-secret."""
    if os.environ.get("GITHUB_WEBHOOK_SECRET"):
        return os.environ["GITHUB_WEBHOOK_SECRET"]
    return kept_secret(folder / "webhook-secret", 20)[0]


def check_port(port: int, variable: str, host: str = "127.0.0.1") -> None:
    """Fail with one line naming the port and the variable when the port is taken (or
    DEV_HOST when it is no address to listen on)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"flowlens: port {port} is already in use; set {variable} to a free port"
                ) from None
            if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
                raise BadHost(
                    f"flowlens: DEV_HOST {host!r} is not an address of this machine"
                    " (127.0.0.1, ::1, 0.0.0.0 for all, or one of its addresses)"
                ) from None
            raise


def is_loopback(host: str) -> bool:
    """True when listening on `host` reaches this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """The host of the banner's URLs when listening on `host`."""
    if host in ("127.0.0.1", "localhost", "0.0.0.0", "::"):  # noqa: S104
        return "localhost"
    return f"[{host}]" if ":" in host else host


_REFUSED = (
    b"flowlens dev answers only requests for localhost, 127.0.0.1 or [::1] (a guard against"
    b" DNS rebinding): behind a tunnel, have it rewrite the Host header to localhost, or set"
    b" DEV_HOST to listen beyond this machine\n"
)
_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LocalHostsOnly:
    """ASGI wrapper: 400 to HTTP and WebSocket requests whose Host is not localhost,
    127.0.0.1, [::1] or `also` (any port). A page whose name an attacker's DNS points at
    127.0.0.1 (DNS rebinding) reaches a loopback server, but under its own name."""

    def __init__(self, app: Any, also: str | None = None) -> None:
        self.app = app
        names = ["localhost", r"127\.0\.0\.1", r"\[::1\]", *([re.escape(also)] if also else [])]
        self.hosts = re.compile(rf"(?:{'|'.join(names)})(?::[0-9]*)?", re.IGNORECASE)

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] in ("http", "websocket"):
            hosts = [value.decode("latin-1") for key, value in scope["headers"] if key == b"host"]
            if len(hosts) != 1 or not self.hosts.fullmatch(hosts[0]):
                await _refuse(scope, send)
                return
        await self.app(scope, receive, send)


async def _refuse(scope: _Scope, send: _Send) -> None:
    # uvicorn's WebSocket protocols take an HTTP answer instead of the handshake.
    prefix = "websocket." if scope["type"] == "websocket" else ""
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(_REFUSED)).encode())]  # fmt: skip
    await send({"type": f"{prefix}http.response.start", "status": 400, "headers": headers})
    await send({"type": f"{prefix}http.response.body", "body": _REFUSED})


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to `flowlens dev`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def poller_app(service: Any) -> Any:
    """The poller as an HTTP function, as functions/poller/main.py serves it in production."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from flowlens.poller.service import is_wake_up

    async def poll(request: Request) -> JSONResponse:
        return JSONResponse(await service.invoke(wake=await is_wake_up(request)))

    return Starlette(routes=[Route("/", poll, methods=["POST"])])


async def tick_every(url: str, seconds: float, stop: asyncio.Event) -> None:
    """Cloud Scheduler's stand-in: invoke the poller now and every `seconds` until stop (the
    safety net behind ingest's wake-ups)."""
    import httpx

    ticks: set[asyncio.Task[Any]] = set()

    def done(tick: asyncio.Task[Any]) -> None:
        ticks.discard(tick)
        if not tick.cancelled() and tick.exception() is not None:
            log.warning("scheduler tick failed: %s", tick.exception())

    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=5.0)) as client:
        try:
            while not stop.is_set():
                tick = asyncio.create_task(client.post(url, content=b"{}"))
                ticks.add(tick)
                tick.add_done_callback(done)
                try:
                    async with asyncio.timeout(seconds):
                        await stop.wait()
                except TimeoutError:
                    pass
        finally:
            for tick in list(ticks):
                tick.cancel()
            await asyncio.gather(*ticks, return_exceptions=True)


def load_attr(path: Path, attr: str) -> Any:
    """Load `attr` from a deployable's entry file (exactly what production runs)."""
    spec = importlib.util.spec_from_file_location(f"flowlens_dev_{path.parent.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attr)


def start_database(folder: Path) -> tuple[str, Any]:
    """The embedded PostgreSQL under .flowlens/ (data kept between runs)."""
    from flowlens.devdb import EmbeddedPostgres, free_port

    port_file = folder / "pg-port"
    leftover = EmbeddedPostgres(folder / "pgdata")
    if leftover.running_here():
        # An earlier run that was killed, or interrupted while it started, left it running;
        # pg_ctl would refuse to start a second server on the same folder.
        print("stopping the embedded PostgreSQL an earlier run left running")
        leftover.stop("fast")
    port = int(port_file.read_text()) if port_file.exists() else 54329
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            port = free_port()
    port_file.write_text(str(port))
    server = EmbeddedPostgres(folder / "pgdata", port=port)
    print(f"starting embedded PostgreSQL on 127.0.0.1:{port} (data in {folder / 'pgdata'})")
    server.start()
    return server.dsn("postgres"), server


async def _ensure_database(admin_dsn: str, name: str) -> str:
    import psycopg
    from psycopg.conninfo import make_conninfo

    from flowlens.db.database import create_database

    with contextlib.suppress(psycopg.errors.DuplicateDatabase):
        await create_database(admin_dsn, name)
    return make_conninfo(admin_dsn, dbname=name)


async def _demo(ingest_url: str, secret: str, delay: float) -> None:
    import httpx

    from flowlens.demo import story
    from flowlens.replay import send

    await asyncio.sleep(1.0)
    print("demo: replaying a pull request's story (open the dashboard to watch it)")
    with httpx.Client(timeout=10) as client:
        for event, title, payload in story():
            _, resp = await asyncio.to_thread(send, client, ingest_url, secret, event, payload)
            print(f"demo: {title:<28} -> {resp.status_code} {resp.json().get('status')}")
            await asyncio.sleep(delay)


async def run_dev(demo: bool = False, demo_delay: float = 2.5) -> int:
    """Start database, migrate, run ingest + poller + API until SIGINT/SIGTERM."""
    root = project_root()
    folder = state_dir(root)
    base = Settings.from_env()
    logs.setup("dev", base.log_format if base.log_format != "auto" else "text", base.log_level)
    ports = {"INGEST_PORT": base.ingest_port, "API_PORT": base.api_port,
             "POLLER_PORT": base.poller_port}  # fmt: skip
    if len(set(ports.values())) < len(ports):
        raise PortInUse("flowlens: INGEST_PORT, API_PORT and POLLER_PORT must differ "
                        f"(now {', '.join(f'{k}={v}' for k, v in ports.items())})")  # fmt: skip
    host = base.dev_host
    for name, port in ports.items():
        check_port(port, name, host)
    claim = claim_folder(folder)

    # From the start: Ctrl-C while the database starts must stop it too, without a traceback.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    embedded = None
    try:
        if base.secret("database_url"):
            dsn = base.dsn
        else:
            admin, embedded = await asyncio.to_thread(start_database, folder)
            if stop.is_set():
                return 0
            dsn = await _ensure_database(admin, "flowlens")
        secret = webhook_secret(folder)
        os.environ["DATABASE_URL"] = dsn
        os.environ["GITHUB_WEBHOOK_SECRET"] = secret
        os.environ.setdefault("LOG_FORMAT", "text")
        # As deployed: ingest wakes the poller function (plainly here), a scheduler ticks it.
        poller_url = f"http://127.0.0.1:{base.poller_port}/"
        os.environ["POLLER_URL"] = poller_url
        os.environ["WAKE_AUTH"] = "none"
        if demo:
            # The story's repository is made up: asking GitHub for its files would only fail
            # (and wait out retries, offline) before every analysis.
            os.environ.setdefault("GITHUB_API_URL", "")
        from flowlens.db import Database

        applied = await Database(dsn, min_size=0, max_size=1).migrate()
        print(f"database ready ({len(applied)} migration(s) applied)")
        if stop.is_set():
            return 0

        from functions_framework.aio import create_asgi_app

        from flowlens.poller.service import PollerService
        from flowlens.settings import PollerSettings

        ingest_app = create_asgi_app(  # type: ignore[no-untyped-call]
            target="ingest", source=str(root / "functions/ingest/main.py")
        )
        api_app = load_attr(root / "services" / "api" / "main.py", "app")
        poller = PollerService(PollerSettings.from_env())
        # Each deployable loaded its own logging setup; one readable stream for all of them.
        logs.setup("dev", "text" if base.log_format == "auto" else base.log_format, base.log_level)

        servers = []
        for app, port, component, where in (
            (ingest_app, base.ingest_port, "ingest", host),
            (api_app, base.api_port, "api", host),
            (poller_app(poller), base.poller_port, "poller", "127.0.0.1"),  # only ingest calls it
        ):
            # Opened beyond loopback (DEV_HOST), any name may reach it: no Host to insist on.
            guarded = LocalHostsOnly(app, also=url_host(where)) if is_loopback(where) else app
            config = uvicorn.Config(
                guarded, host=where, port=port, log_config=None, access_log=False,
                lifespan="on" if component == "api" else "off", ws="websockets-sansio",
                ws_per_message_deflate=False,
            )  # fmt: skip
            servers.append((_Server(config), component))

        tasks: list[asyncio.Task[Any]] = []
        for server, component in servers:
            with logs.bind(component=component):
                tasks.append(asyncio.create_task(server.serve()))
        # The banner gives URLs to use at once: print it only when both servers listen.
        for (server, _), task in zip(servers, tasks, strict=True):
            await wait_started(server, task)
        analyser = getattr(poller.analyser, "name", "risk-model")
        local = url_host(host)
        ingest_url = f"http://{local}:{base.ingest_port}/"
        api_url = f"http://{local}:{base.api_port}"
        ci_key = base.secret("ci_write_key")
        ci_path = "(Bearer CI_WRITE_KEY)" if ci_key else "(off: set CI_WRITE_KEY to use it)"
        print(
            "\nFlowLens is running\n"
            f"  webhook URL    {ingest_url}  (content type application/json)\n"
            f"  webhook secret {secret}\n"
            f"  CI build path  {ingest_url}api/webhook/github-actions {ci_path}\n"
            f"  API            {api_url}/api/prs\n"
            f"  dashboard      {api_url}/\n"
            f"  Flutter app    {api_url}/flutter"
            f"  (socket ws://{local}:{base.api_port}/flutter/ws)\n"
            f"  analyser       {analyser}"
            + (" (set GEMINI_API_KEY for Gemini)" if analyser == "risk-model" else "")
            + (
                f"\n  database       DATABASE_URL={embedded.dsn('flowlens')}"
                "  (for flowlens events, sync...)"
                if embedded is not None
                else ""
            )
            + (
                ""
                if is_loopback(host)
                else f"\n  listening on   {host} (DEV_HOST): other machines reach ingest and the"
                " API, under any host name"
            )
            + "\n  stop           Ctrl-C\n",
            flush=True,
        )
        with logs.bind(component="scheduler"):
            tasks.append(asyncio.create_task(tick_every(poller_url, 60.0, stop)))
        if demo:
            with logs.bind(component="demo"):
                tasks.append(asyncio.create_task(_demo(ingest_url, secret, demo_delay)))
        await stop.wait()
        print("\nstopping...", flush=True)
        poller.shutdown.set()
        for server, _ in servers:
            server.should_exit = True
        await asyncio.wait(tasks, timeout=10)
        for task in tasks:
            task.cancel()
        await poller.close()
        from flowlens.ingest.app import close_all

        await close_all()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop, "fast")
            print("embedded PostgreSQL stopped")
        claim.close()
    return 0


def main(demo: bool = False) -> int:
    """Entry point of `flowlens dev`."""
    # The test suite's hook: the demo's pace for a person to watch, shorter for a test.
    demo_delay = float(os.environ.get("FLOWLENS_DEMO_DELAY", "2.5"))
    try:
        return asyncio.run(run_dev(demo=demo, demo_delay=demo_delay))
    except (PortInUse, FolderInUse, BadHost) as exc:
        print(exc.code, file=sys.stderr)
        return 1
