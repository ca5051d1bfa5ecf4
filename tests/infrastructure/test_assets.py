"""The Docker-free asset builder: function folders and the dependency layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.cdk import assets


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "functions" / "orders_api").mkdir(parents=True)
    (root / "functions" / "orders_api" / "handler.py").write_text("def lambda_handler(event, context): ...\n")
    (root / "functions" / "orders_api" / "routes.py").write_text("ROUTES = ()\n")
    (root / "functions" / "orders_api" / "notes.txt").write_text("not code\n")
    (root / "shared" / "orderhub" / "store").mkdir(parents=True)
    (root / "shared" / "orderhub" / "__init__.py").write_text("")
    (root / "shared" / "orderhub" / "store" / "orders.py").write_text("TABLE = 'orders'\n")
    (root / "shared" / "orderhub" / "__pycache__").mkdir()
    (root / "shared" / "orderhub" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (root / "requirements-lambda.lock").write_text("pydantic==2.14.3\n")
    return root


def test_a_function_asset_has_its_modules_at_the_root_and_the_orderhub_package(repo: Path, tmp_path: Path) -> None:
    built = assets.build_function(repo, tmp_path / "build", "orders_api")

    assert sorted(p.name for p in built.iterdir()) == ["handler.py", "orderhub", "routes.py"]
    assert (built / "orderhub" / "store" / "orders.py").read_text() == "TABLE = 'orders'\n"
    assert not (built / "orderhub" / "__pycache__").exists()


def test_a_declared_function_without_a_handler_stops_the_synth(repo: Path, tmp_path: Path) -> None:
    # It would deploy, then fail at its first event.
    with pytest.raises(FileNotFoundError, match="sla_watchdog"):
        assets.build_function(repo, tmp_path / "build", "sla_watchdog")


def test_a_rebuilt_function_asset_drops_deleted_modules(repo: Path, tmp_path: Path) -> None:
    assets.build_function(repo, tmp_path / "build", "orders_api")
    (repo / "functions" / "orders_api" / "routes.py").unlink()

    built = assets.build_function(repo, tmp_path / "build", "orders_api")

    assert not (built / "routes.py").exists()


def test_the_placeholder_layer_needs_no_pip(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assets.subprocess, "run", _no_pip)

    layer = assets.build_layer(repo / "requirements-lambda.lock", tmp_path / "build", skip_deps=True)

    assert [p.name for p in (layer / "python").iterdir()] == ["README.txt"]


def test_pip_runs_for_lambdas_platform_and_only_when_the_lock_changes(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(assets.subprocess, "run", lambda args, check: calls.append(args))
    lock = repo / "requirements-lambda.lock"

    assets.build_layer(lock, tmp_path / "build", skip_deps=False)
    assets.build_layer(lock, tmp_path / "build", skip_deps=False)
    lock.write_text("pydantic==2.14.4\n")
    assets.build_layer(lock, tmp_path / "build", skip_deps=False)

    assert len(calls) == 2
    args = " ".join(calls[0])
    for expected in ("--platform manylinux2014_aarch64", "--python-version 3.13", "--implementation cp",
                     "--only-binary=:all:", f"-r {lock}"):
        assert expected in args


def test_a_placeholder_layer_is_replaced_by_a_real_one(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(assets.subprocess, "run", lambda args, check: calls.append(args))
    lock = repo / "requirements-lambda.lock"

    layer = assets.build_layer(lock, tmp_path / "build", skip_deps=True)
    assets.build_layer(lock, tmp_path / "build", skip_deps=False)

    assert len(calls) == 1
    assert not (layer / "python" / "README.txt").exists()


def _no_pip(*args, **kwargs):
    raise AssertionError("pip must not run")
