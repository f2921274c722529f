#!/usr/bin/env bash
# CUDA forward compatibility, then `exec "$@"`: the image's ENTRYPOINT runs it between tini and entrypoint.sh.
#
# torch 2.14.1's PyPI wheels are built for CUDA 13.0, which needs an NVIDIA driver of branch 580 or newer.
# On a datacenter GPU whose host driver is an older branch (535 and 550 are still what most SageMaker AMIs
# carry, e.g. every batch transform AMI), CUDA 13 runs only through NVIDIA's forward-compatibility libraries,
# which the nvidia/cuda base image ships in /usr/local/cuda/compat. The NVIDIA Container Toolkit (>= 1.17.4,
# and every SageMaker "…with disabled CUDA-compat mounting" AMI) no longer puts them on the loader path: the
# container has to, and only when the host driver is older. A host driver of the same branch or newer must
# never get them (the user-space libcuda would then not match the kernel module).
#
# Environment (defaults are the container's; tests point them elsewhere):
#   SEGSERVE_CUDA_COMPAT_DIR        forward-compatibility libraries  (/usr/local/cuda/compat)
#   SEGSERVE_NVIDIA_VERSION_FILE    the kernel module's version      (/proc/driver/nvidia/version)
#   `nvidia-smi` on PATH is asked when that file is absent. No driver visible (a CPU host): nothing to do.
set -euo pipefail

compat_dir="${SEGSERVE_CUDA_COMPAT_DIR:-/usr/local/cuda/compat}"
version_file="${SEGSERVE_NVIDIA_VERSION_FILE:-/proc/driver/nvidia/version}"

(( $# > 0 )) || { echo "usage: cuda-compat.sh COMMAND [ARGS...]" >&2; exit 2; }

host_driver_version() {
  local version=""
  if [[ -r "$version_file" ]]; then
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024"
    version="$(sed -n 's/^NVRM version:.*Kernel Module[^0-9]*\([0-9][0-9.]*\).*$/\1/p' "$version_file" | head -n 1)"
  fi
  if [[ -z "$version" ]] && command -v nvidia-smi >/dev/null 2>&1; then
    version="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '[:space:]')" || version=""
  fi
  echo "$version"
}

compat_driver_version() {
  # libcuda.so.1 -> libcuda.so.580.95.05: the driver version the compat libraries stand in for.
  local target
  target="$(readlink "$compat_dir/libcuda.so.1" 2>/dev/null || true)"
  [[ "$target" =~ libcuda\.so\.([0-9][0-9.]*)$ ]] && echo "${BASH_REMATCH[1]}"
}

host="$(host_driver_version)"
compat="$(compat_driver_version || true)"
number='^[0-9]+(\.[0-9]+)*$'
if [[ "$host" =~ $number && "$compat" =~ $number ]]; then
  if (( ${host%%.*} < ${compat%%.*} )); then
    export LD_LIBRARY_PATH="${compat_dir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "cuda-compat: host driver $host is older than CUDA's $compat: using the forward-compatibility libraries in $compat_dir" >&2
  else
    echo "cuda-compat: host driver $host serves CUDA directly (compat libraries $compat not needed)" >&2
  fi
fi

exec "$@"
