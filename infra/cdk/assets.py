"""Lambda code assets, built without Docker.

Each function's asset is its own folder (`functions/<name>/*.py` at the root, so the handler
is `handler.lambda_handler`) plus a copy of the `orderhub` package. Third-party packages go
into one layer, installed by pip for Lambda's platform (arm64, CPython 3.13) from the
pinned `requirements-lambda.lock`; boto3 is left to the Lambda runtime.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Tests and offline synths set this: the layer is then a placeholder and pip is not run.
SKIP_LAYER_DEPS_ENV = "ORDERHUB_SKIP_LAYER_DEPS"

LAYER_PYTHON_VERSION = "3.13"
_PIP_PLATFORM_ARGS = (
    "--platform", "manylinux2014_aarch64",
    "--implementation", "cp",
    "--python-version", LAYER_PYTHON_VERSION,
    "--only-binary=:all:",
)
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache")


@dataclass(frozen=True)
class AssetPaths:
    layer: Path
    functions: dict[str, Path]
    placeholder_layer: bool  # no third-party packages: fine to synthesise, not to deploy


def build_assets(repo_root: Path, build_dir: Path, function_names: list[str]) -> AssetPaths:
    skip_deps = os.environ.get(SKIP_LAYER_DEPS_ENV) == "1"
    return AssetPaths(
        layer=build_layer(repo_root / "requirements-lambda.lock", build_dir, skip_deps=skip_deps),
        functions={name: build_function(repo_root, build_dir, name) for name in function_names},
        placeholder_layer=skip_deps,
    )


def build_function(repo_root: Path, build_dir: Path, name: str) -> Path:
    """`<build_dir>/functions/<name>/`: the function's modules plus the `orderhub` package."""
    target = build_dir / "functions" / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    source = repo_root / "functions" / name
    if not (source / "handler.py").is_file():
        # A function the topology declares but nobody wrote would deploy and fail at its first event.
        raise FileNotFoundError(f"{source}/handler.py: the topology declares function {name!r} but it has no handler")
    for module in sorted(source.glob("*.py")):
        shutil.copy2(module, target / module.name)
    package = repo_root / "shared" / "orderhub"
    if package.is_dir():
        shutil.copytree(package, target / "orderhub", ignore=_IGNORED)
    return target


def build_layer(lock_file: Path, build_dir: Path, *, skip_deps: bool) -> Path:
    """`<build_dir>/layer/` with `python/` inside (Lambda's layer layout), rebuilt only when needed.

    The stamp records what the layer was built from (lock file content and pip platform
    arguments, or "placeholder"); it lives outside the layer so it does not change the asset hash.
    """
    layer_root = build_dir / "layer"
    target = layer_root / "python"
    stamp = build_dir / "layer.stamp"
    wanted = "placeholder" if skip_deps else _lock_digest(lock_file)
    if target.is_dir() and stamp.is_file() and stamp.read_text() == wanted:
        return layer_root

    stamp.unlink(missing_ok=True)
    shutil.rmtree(layer_root, ignore_errors=True)
    target.mkdir(parents=True)
    if skip_deps:
        (target / "README.txt").write_text(
            f"Placeholder layer: built with {SKIP_LAYER_DEPS_ENV}=1, third-party packages not installed.\n"
        )
    else:
        subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                *_PIP_PLATFORM_ARGS,
                # The lock is complete (every transitive pin), so pip resolves nothing itself;
                # .pyc files would be compiled for this interpreter, not Lambda's.
                "--no-deps", "--no-compile",
                "--target", str(target),
                "-r", str(lock_file),
            ],
            check=True,
        )
    stamp.write_text(wanted)
    return layer_root


def _lock_digest(lock_file: Path) -> str:
    digest = hashlib.sha256(lock_file.read_bytes())
    digest.update(" ".join(_PIP_PLATFORM_ARGS).encode())
    return digest.hexdigest()
