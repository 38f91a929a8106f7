"""Build each Cloud Run function's deploy folder: main.py, requirements.txt, the flowlens wheel.

    python tools/bundle.py [--out build/bundles] [NAME ...]

For every folder under functions/ (or the NAMEs given) this writes
build/bundles/<name>/ holding the function's own files, the flowlens wheel built
from this checkout, and a requirements.txt that installs that wheel by relative
path (never a git URL) plus exact pins of every runtime dependency, taken from
the environment the tests ran in. It also writes build/bundles/<name>.zip, a
byte-for-byte reproducible archive of the folder (Terraform uploads it under a
content-hash name, so an unchanged bundle never redeploys).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
DEFAULT_OUT = ROOT / "build" / "bundles"
# Fixed archive timestamps (1980-01-01, the zip epoch) make the zip reproducible.
EPOCH = 315532800
SKIP_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}
# Packaging tools the function runtime brings itself.
NOT_PINNED = {"pip", "setuptools", "wheel"}


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy src into dst, leaving caches and byte-code behind."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in SKIP_NAMES or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.suffix in SKIP_SUFFIXES:
            continue
        target = dst / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def build_wheel(dest: Path) -> Path:
    """Build the flowlens wheel from a clean copy of the sources (no stale build/ dirs)."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("flowlens-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="flowlens-src-") as tmp:
        src = Path(tmp)
        for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
            if (ROOT / name).exists():
                shutil.copy2(ROOT / name, src / name)
        _copy_tree(ROOT / "shared" / "flowlens", src / "shared" / "flowlens")
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH), PIP_DISABLE_PIP_VERSION_CHECK="1")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dest), "."],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise RuntimeError(f"building the flowlens wheel failed (exit {done.returncode})")
    wheels = sorted(dest.glob("flowlens-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one flowlens wheel in {dest}, found {wheels}")
    return wheels[0]


def wheel_requires(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a built wheel (the truth, unlike a stale editable install)."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta_name).decode("utf-8")
    return [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def runtime_pins(requires: Iterable[str]) -> list[str]:
    """`name==version` of the installed distributions that satisfy requires, transitively."""
    base_env = {k: str(v) for k, v in default_environment().items()}
    seen: dict[str, str] = {}
    queue: list[tuple[str, frozenset[str]]] = []
    visited: set[tuple[str, frozenset[str]]] = set()

    def enqueue(raws: Iterable[str], extras: frozenset[str]) -> None:
        for raw in raws:
            req = Requirement(raw)
            if req.marker is not None and not any(
                req.marker.evaluate({**base_env, "extra": extra}) for extra in (extras or {""})
            ):
                continue
            queue.append((req.name, frozenset(req.extras)))

    enqueue(requires, frozenset())
    while queue:
        name, extras = queue.pop()
        key = (canonicalize_name(name), extras)
        if key in visited:
            continue
        visited.add(key)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise RuntimeError(
                f"{name} is a runtime dependency but is not installed here; "
                "run `make .venv/.installed` first"
            ) from None
        seen[canonicalize_name(dist.metadata["Name"])] = dist.version
        enqueue(dist.requires or [], extras)
    return [
        f"{name}=={version}" for name, version in sorted(seen.items()) if name not in NOT_PINNED
    ]


def _write_zip(folder: Path, archive: Path) -> None:
    """Zip folder with sorted names and fixed timestamps, so equal content gives equal bytes."""
    tmp = archive.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(
                path.relative_to(folder).as_posix(), date_time=(1980, 1, 1, 0, 0, 0)
            )
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    tmp.replace(archive)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_bundle(name: str, wheel: Path, pins: Iterable[str], out: Path) -> Path:
    """Write out/<name>/ and out/<name>.zip for functions/<name>; return the folder."""
    src = FUNCTIONS / name
    if not (src / "main.py").is_file():
        raise FileNotFoundError(f"{src / 'main.py'} does not exist")
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    _copy_tree(src, folder)
    shutil.copy2(wheel, folder / wheel.name)
    lines = [
        f"# Generated by tools/bundle.py for the `{name}` function; do not edit.",
        "# The flowlens package ships inside this folder as a built wheel.",
        f"./{wheel.name}",
        "# Exact versions of the environment the test suite ran in.",
        *pins,
    ]
    (folder / "requirements.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_zip(folder, out / f"{name}.zip")
    return folder


def discover() -> list[str]:
    """Names of the function folders that have a main.py."""
    return sorted(p.parent.name for p in FUNCTIONS.glob("*/main.py"))


def main(argv: Sequence[str] | None = None) -> int:
    """Build the bundles named on the command line, or all of them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="function folders under functions/ (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    names: list[str] = args.names or discover()
    if not names:
        print("bundle: no functions/*/main.py found", file=sys.stderr)
        return 1
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(out / ".wheel")
    pins = runtime_pins(wheel_requires(wheel))
    manifest: dict[str, dict[str, str]] = {}
    for name in names:
        folder = build_bundle(name, wheel, pins, out)
        archive = out / f"{name}.zip"
        manifest[name] = {"folder": name, "zip": archive.name, "sha256": _sha256(archive)}
        print(f"bundle: {name} -> {folder} ({archive.name} sha256 {manifest[name]['sha256'][:12]})")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
