"""The version check: a model folder built by another segserve version makes its handler refuse to start."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from segserve.build_info import BUILD_INFO_FILE, ModelStoreMismatch, check_built_with, installed_version

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def router_handler_class():
    sys.path.insert(0, str(REPO / "handlers"))
    try:
        from router_handler import RouterHandler
    finally:
        sys.path.remove(str(REPO / "handlers"))
    return RouterHandler


def context_for(model_dir: Path, name: str = "router"):
    return SimpleNamespace(system_properties={"model_dir": str(model_dir)}, model_name=name, model_yaml_config={})


def test_the_installed_version_is_the_projects_own():
    assert installed_version() == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_a_folder_built_by_the_installed_version_passes(tmp_path):
    (tmp_path / BUILD_INFO_FILE).write_text(json.dumps({"package": "segserve", "version": installed_version()}))
    check_built_with(tmp_path, "sam2")


def test_another_version_is_refused_naming_both(tmp_path):
    (tmp_path / BUILD_INFO_FILE).write_text(json.dumps({"package": "segserve", "version": "0.0.9"}))
    with pytest.raises(ModelStoreMismatch) as raised:
        check_built_with(tmp_path, "sam2")
    message = str(raised.value)
    assert "segserve 0.0.9" in message and f"segserve {installed_version()} is installed" in message
    assert "'sam2'" in message and "make model-store" in message


def test_a_folder_without_build_info_is_refused_as_older(tmp_path):
    with pytest.raises(ModelStoreMismatch, match=f"has no {BUILD_INFO_FILE}.*older than the installed"):
        check_built_with(tmp_path, "langsam")


def test_unreadable_build_info_is_refused(tmp_path):
    (tmp_path / BUILD_INFO_FILE).write_text("{not json")
    with pytest.raises(ModelStoreMismatch, match="unreadable"):
        check_built_with(tmp_path, "langsam")


def test_the_store_builder_writes_the_version_and_the_handler_checks_it(tmp_path, tiny_bundle, router_handler_class):
    store = tmp_path / "store"
    result = subprocess.run(
        [sys.executable, str(REPO / "serving" / "build_model_store.py"), "--weights",
         str(tiny_bundle.sam2_checkpoint.parent), "--model-store", str(store), "--models", "router"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    folder = store / "router"
    assert json.loads((folder / BUILD_INFO_FILE).read_text()) == {"package": "segserve", "version": installed_version()}
    handler = router_handler_class()
    handler.initialize(context_for(folder))  # built by this version: starts
    assert handler.route is not None

    (folder / BUILD_INFO_FILE).write_text(json.dumps({"package": "segserve", "version": "9.9.9"}))
    with pytest.raises(ModelStoreMismatch, match=f"built by segserve 9.9.9, but segserve {installed_version()}"):
        router_handler_class().initialize(context_for(folder))
