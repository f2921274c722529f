#!/usr/bin/env bash
# Builds serving/plugins/build/segserve-plugins.jar: the TorchServe endpoint plugins (/ping, /execution-parameters).
# Compiles against the model-server.jar of the TorchServe installed for $PYTHON (default: .venv/bin/python at the
# repo root). Does nothing when the jar is newer than every source, this script and model-server.jar.
# Needs javac and jar (JDK 11 or later).
set -euo pipefail

die() { echo "build.sh: error: $*" >&2; exit 1; }

plugin_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$plugin_dir/../.." && pwd)"
python="${PYTHON:-$repo_root/.venv/bin/python}"
src_dir="$plugin_dir/src/main"
build_dir="$plugin_dir/build"
jar_path="$build_dir/segserve-plugins.jar"

command -v javac >/dev/null || die "javac not found (install a JDK, 11 or later)"
command -v jar >/dev/null || die "jar not found (install a JDK, 11 or later)"
command -v "$python" >/dev/null || die "python interpreter '$python' not found; set PYTHON or create .venv"
ts_dir="$("$python" -c 'import ts, os; print(os.path.dirname(ts.__file__))')" \
    || die "'$python' cannot import ts: is torchserve installed?"
sdk_jar="$ts_dir/frontend/model-server.jar"
[[ -f "$sdk_jar" ]] || die "$sdk_jar not found"

if [[ -f "$jar_path" ]] \
        && [[ -z "$(find "$src_dir" "${BASH_SOURCE[0]}" "$sdk_jar" -newer "$jar_path" -print -quit)" ]]; then
    echo "build.sh: up to date: $jar_path"
    exit 0
fi

mapfile -t sources < <(find "$src_dir/java" -name '*.java' | sort)
(( ${#sources[@]} > 0 )) || die "no Java sources under $src_dir/java"

mkdir -p "$build_dir"
classes_dir="$(mktemp -d "$build_dir/.classes.XXXXXX")"
trap 'rm -rf "$classes_dir" "$jar_path.tmp.$$"' EXIT

javac --release 11 -encoding UTF-8 -proc:none -Xlint:all -Werror -cp "$sdk_jar" -d "$classes_dir" "${sources[@]}"
cp -R "$src_dir/resources/." "$classes_dir/"
jar --create --file "$jar_path.tmp.$$" -C "$classes_dir" .
mv -f "$jar_path.tmp.$$" "$jar_path"

echo "build.sh: built $jar_path from ${#sources[@]} sources against $sdk_jar"
