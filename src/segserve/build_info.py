"""Which version of segserve built a model folder, and the check that the installed one is the same.

serving/build_model_store.py writes `built-with.json` into every model folder; each handler calls
`check_built_with` in `initialize`, so a store built by another version fails at once with both versions
named, instead of late and obscurely (a changed weights layout, a renamed setting, a missing module).
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

BUILD_INFO_FILE = "built-with.json"
PACKAGE = "segserve"


class ModelStoreMismatch(RuntimeError):
    """The model folder was built by another segserve version than the one installed (an operator's problem)."""


def installed_version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def write_build_info(folder: Path) -> Path:
    path = Path(folder) / BUILD_INFO_FILE
    path.write_text(json.dumps({"package": PACKAGE, "version": installed_version()}) + "\n")
    return path


def check_built_with(model_dir: Path, model_name: str) -> None:
    """Raise ModelStoreMismatch unless `model_dir` was built by the installed segserve version."""
    installed = installed_version()
    path = Path(model_dir) / BUILD_INFO_FILE
    rebuild = "rebuild the model store with this version (make model-store, or serving/build_model_store.py)"
    try:
        built = json.loads(path.read_text()).get("version")
    except FileNotFoundError:
        raise ModelStoreMismatch(
            f"model {model_name!r} at {model_dir} has no {BUILD_INFO_FILE}: it was built by a segserve older than "
            f"the installed {installed}; {rebuild}"
        ) from None
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelStoreMismatch(f"model {model_name!r}: {path} is unreadable ({exc}); {rebuild}") from None
    if built != installed:
        raise ModelStoreMismatch(
            f"model {model_name!r} at {model_dir} was built by segserve {built}, but segserve {installed} is "
            f"installed; {rebuild}"
        )
