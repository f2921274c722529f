"""Plain-text models of the container image's build inputs, for the tests of the container files (no tests here).

- `Dockerfile`: the instructions of the repo's Dockerfile, by stage (FROM bases, ARG, ENV, LABEL, COPY, the simple
  commands of every RUN, exec-form ENTRYPOINT/CMD), and `runtime_files`: which COPY puts each file of the image.
- `PipInstall`: a `pip install` command line read into what changes what gets installed, from the RUNs of the
  Dockerfile (`pip_installs`) or from the Makefile's install recipe (`makefile_install_commands`).
- .dockerignore, evaluated with Docker's matching rules (`left_out_of_the_context`).
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
BUILD_STAGE, RUNTIME_STAGE = "build", "runtime"


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


def runtime_files(dockerfile: Dockerfile) -> dict[str, Copy]:
    """Image path → the COPY that puts a file there (a destination ending in / keeps the source's name)."""
    files = {}
    for copy in dockerfile.copies(RUNTIME_STAGE):
        for source in copy.sources:
            dest = copy.dest + posixpath.basename(source.rstrip("/")) if copy.dest.endswith("/") else copy.dest
            files[dest] = copy
    return files


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
    """The recipe of the Makefile's install stamp, `$(PIP)` read as `pip` and `$(PY)` as `python`."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("$(STAMP):"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(shlex.split(line.strip().replace("$(PIP)", "pip").replace("$(PY)", "python")))
    return recipe


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
