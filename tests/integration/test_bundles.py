"""Each function bundle installs into a clean venv and functions-framework loads its target.

This is what Cloud Run functions' Python buildpack does with the folder: pip-install its
requirements.txt (from the folder, so the relative wheel path resolves) and import main.py.
Each distinct requirements.txt (comments aside: only the header names its function) is
resolved against the package index once (`pip download` into a wheelhouse), and installed from
that wheelhouse with --no-index into a clean venv once, from the first bundle's folder that
needs it; each bundle then loads its target in that venv. About 5 s to build the wheel, 10 s
to resolve, 5 s to install, 2 s per bundle to load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.unit.test_terraform import FUNCTION_TARGETS, function_targets, locals_

ROOT = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
BUNDLED = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))

# Loads the target the way the functions-framework CLI does, from inside the bundle venv.
LOADER = """
import json, sys
import flowlens, functions_framework, functions_framework.aio as aio
target = sys.argv[1]
assert flowlens.__file__.startswith(sys.prefix), ("flowlens leaked in from", flowlens.__file__)
app = aio.create_asgi_app(target=target, source="main.py")
# What the buildpack's `functions-framework --target` runs: the WSGI factory, which hands
# an aio target to the ASGI one after main.py ran (and may then re-configure logging).
auto = functions_framework.create_app(target=target, source="main.py")
import logging
root = logging.getLogger()
disabled = [n for n, lg in root.manager.loggerDict.items()
            if n.startswith("flowlens") and getattr(lg, "disabled", False)]
print(json.dumps({"asgi": type(app).__name__, "auto": type(auto).__name__,
                  "flowlens": flowlens.__file__, "level": logging.getLevelName(root.level),
                  "handlers": [h.get_name() for h in root.handlers], "disabled": disabled}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment minus anything that could leak the dev venv or settings in."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles")
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bundle.py"), "--out", str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return out


@pytest.fixture(scope="module")
def wheelhouse(bundles: Path) -> Path:
    """Resolve each distinct requirements.txt against the index once, keeping the wheels."""
    house = bundles / "_wheelhouse"
    seen: set[tuple[str, ...]] = set()
    for name in BUNDLED:
        folder = bundles / name
        wanted = _requirements(folder)
        if wanted in seen:
            continue
        seen.add(wanted)
        done = subprocess.run(
            [*PIP, "download", "--quiet", "--dest", str(house), "-r", "requirements.txt"],
            cwd=folder,
            env=_clean_env(),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{name}: requirements do not resolve\n{done.stderr[-4000:]}"
    return house


def _requirements(folder: Path) -> tuple[str, ...]:
    """What pip reads from the folder's requirements.txt: its lines less comments."""
    lines = (folder / "requirements.txt").read_text("utf-8").splitlines()
    return tuple(line for line in lines if line.strip() and not line.startswith("#"))


@pytest.fixture(scope="module")
def installed() -> dict[tuple[str, ...], Path]:
    """Clean venvs by (requirements, wheel digest): bundles that ask for the same get one."""
    return {}


def _install(folder: Path, wheelhouse: Path, venv: Path) -> Path:
    """A clean venv with the bundle's requirements.txt installed as the buildpack does."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The dev venv's pip installs into the clean one (--python); cwd is the bundle folder,
    # exactly as the buildpack runs `pip install -r requirements.txt` from the source root.
    # Offline: a requirement the wheelhouse lacks (say, a dependency missing from the pins
    # that pip would otherwise fetch) fails here.
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-compile",
            "--disable-pip-version-check",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "-r",
            "requirements.txt",
        ],
        cwd=folder,
        env=_clean_env(),
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-4000:]
    return venv


def _run_together(
    *commands: tuple[list[str], Path], env: dict[str, str], timeout: float = 120
) -> list[subprocess.CompletedProcess[str]]:
    """Run (argv, cwd) commands at once; their completed processes, in order."""
    procs = [
        subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for argv, cwd in commands
    ]
    try:
        outputs = [proc.communicate(timeout=timeout) for proc in procs]
        return [
            subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
            for proc, (out, err) in zip(procs, outputs, strict=True)
        ]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_bundles_match_terraform() -> None:
    assert function_targets() == FUNCTION_TARGETS
    assert set(BUNDLED) <= set(FUNCTION_TARGETS), "a function folder Terraform does not deploy"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", BUNDLED)
def test_bundle_installs_and_loads(
    name: str,
    bundles: Path,
    wheelhouse: Path,
    installed: dict[tuple[str, ...], Path],
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    folder = bundles / name
    files = sorted(p.name for p in folder.iterdir())
    wheels = [f for f in files if f.endswith(".whl")]
    assert wheels and wheels[0].startswith("flowlens-"), files
    assert {"main.py", "requirements.txt"} <= set(files)
    requirements = (folder / "requirements.txt").read_text("utf-8")
    assert f"./{wheels[0]}" in requirements.splitlines()
    assert "git+" not in requirements and "://" not in requirements
    # The zip Terraform uploads holds the same files at its root.
    with zipfile.ZipFile(bundles / f"{name}.zip") as zf:
        assert sorted(zf.namelist()) == files
    manifest = json.loads((bundles / "manifest.json").read_text("utf-8"))
    assert manifest[name]["zip"] == f"{name}.zip"

    digest = hashlib.sha256((folder / wheels[0]).read_bytes()).hexdigest()
    key = (*_requirements(folder), digest)
    if key not in installed:
        installed[key] = _install(folder, wheelhouse, tmp_path_factory.mktemp(f"venv-{name}"))
    venv = installed[key]
    python = venv / "bin" / "python"

    target = FUNCTION_TARGETS[name]
    env = _clean_env(
        # Import-time settings only: nothing connects while the target loads.
        DATABASE_URL="postgresql://bundle:test@127.0.0.1:9/none",
        GITHUB_WEBHOOK_SECRET="bundle-test-secret",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        # The functions-framework switches Terraform sets (locals.tf).
        **locals_()["functions_framework_env"],
    )
    # A broken bundle fails the same check: a missing target, and a main.py that cannot import.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "main.py").write_text(
        (folder / "main.py").read_text("utf-8") + "\nimport flowlens.no_such_module\n", "utf-8"
    )
    # Three independent interpreters: started together, each waited for.
    loaded, missing, failed = _run_together(
        ([str(python), "-c", LOADER, target], folder),
        ([str(python), "-c", LOADER, "no_such_target"], folder),
        ([str(python), "-c", LOADER, target], broken),
        env=env,
    )
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    report = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert report["asgi"] == "Starlette"
    assert report["auto"] == "Starlette", "functions-framework did not detect the ASGI target"
    assert report["flowlens"].startswith(str(venv))
    # flowlens' own logging survives the framework's start-up, as deployed.
    assert report["level"] == "INFO" and "flowlens" in report["handlers"], report
    assert report["disabled"] == [], report
    assert missing.returncode != 0
    assert "no_such_target" in missing.stderr
    assert failed.returncode != 0
    assert "no_such_module" in failed.stderr


@pytest.mark.timeout(600)
def test_api_image_layout_installs_and_loads(
    bundles: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    """What services/api/Dockerfile assembles: the wheel installed, services/api copied to /app."""
    (wheel,) = (bundles / ".wheel").glob("flowlens-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    offline = ["--no-index", "--find-links", str(wheelhouse)]
    install = subprocess.run(
        [
            *PIP,
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--no-compile",
            *offline,
            str(wheel),
        ],
        env=_clean_env(),
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-4000:]
    app_dir = tmp_path / "app"
    shutil.copytree(
        ROOT / "services" / "api",
        app_dir / "services" / "api",
        ignore=shutil.ignore_patterns("__pycache__", "Dockerfile*"),
    )
    # The image's CMD (uvicorn) and the migration job's command (flowlens) are installed.
    assert (venv / "bin" / "uvicorn").exists()
    assert (venv / "bin" / "flowlens").exists()
    env = _clean_env(DATABASE_URL="postgresql://image:test@127.0.0.1:9/none", LOG_FORMAT="text")
    loaded = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import services.api.main as m; print(type(m.app))"],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    assert "FastAPI" in loaded.stdout or "Starlette" in loaded.stdout, loaded.stdout
    helped = subprocess.run(
        [str(venv / "bin" / "flowlens"), "migrate", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0, helped.stderr[-4000:]
