# syntax=docker/dockerfile:1
#
# segserve: SAM2 / Lang-SAM segmentation served by TorchServe 0.12.0, as a SageMaker GPU inference container.
#
# Build (BuildKit; not possible in the dev sandboxes, which have no Docker engine):
#   docker build -t segserve:0.1.0 --build-arg VCS_REF="$(git rev-parse HEAD)" .
#
# The image holds code only. The models come from SageMaker's ModelDataUrl, unpacked read-only into /opt/ml/model:
#   make model-store WEIGHTS=official               # model_store/{router,langsam,sam2[,sam3]}: no-archive model folders
#   tar --mode=a+rX --owner=0 --group=0 -czf model.tar.gz -C model_store .   # the folders at the archive's root
#   aws s3 cp model.tar.gz s3://BUCKET/segserve/model.tar.gz     # → the Model's ModelDataUrl
# --mode=a+rX (GNU tar) because the container runs as uid 10001: transformers' save_pretrained writes
# model.safetensors 0600, and a file only its owner may read stops langsam from ever loading (/ping stays 503).
# (A ModelDataSource with CompressionType=None on an S3 prefix of the same folders skips the unpacking.)
# SageMaker starts it as `docker run IMAGE serve`; serving/entrypoint.sh then runs TorchServe on port 8080
# (or SAGEMAKER_BIND_TO_PORT) and /ping turns 200 once router, langsam, sam2 (and sam3, if deployed) have a loaded worker.
#
# Locally, with the model store built above:
#   docker run --rm --gpus all -p 8080:8080 -v "$PWD/model_store:/opt/ml/model:ro" segserve:0.1.0
#
# GPU driver: torch 2.14.1 from PyPI is built for CUDA 13.0 (it pulls nvidia-cuda-runtime 13.0.96 and cuDNN 9
# for CUDA 13), which needs an NVIDIA driver of branch 580+, or NVIDIA's forward-compatibility libraries on an
# older datacenter driver (serving/container/cuda-compat.sh switches them on when needed). For real-time and
# async endpoints set the production variant's InferenceAmiVersion=al2023-ami-sagemaker-inference-gpu-4-1
# (driver 580, CUDA 13.0): the default AMI of ml.g4dn/ml.g5 has driver 470, too old for CUDA 13.
# CUDA 13 also dropped Volta: no ml.p3. Nothing else is GPU-specific here: TorchServe gives each worker a gpu_id
# and the handlers pick bf16 autocast / TF32 where the GPU supports them.

# CUDA 13.0 to match torch's wheels. The `base` flavour, not `runtime`: torch's wheels bring their own cuBLAS,
# cuDNN, NCCL… (3.2 GB in the venv) and load them through their RPATH, so the `runtime` flavour's gigabytes of
# copies of the same libraries would never be loaded. `base` still carries what the container needs from
# NVIDIA: NVIDIA_REQUIRE_CUDA / NVIDIA_DRIVER_CAPABILITIES and the cuda-compat libraries.
# Pin the digest (nvidia/cuda:13.0.2-base-ubuntu24.04@sha256:…) for release builds.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.11.6

FROM ${UV_IMAGE} AS uv

# --- build: Python, the venv with every pinned runtime dependency, the package, the plugin jar -------------------
FROM ${CUDA_IMAGE} AS build

# Python 3.11 (pyproject: >=3.11,<3.12) is not Ubuntu 24.04's (3.12). A python-build-standalone CPython installed
# by uv: one static download whose checksum uv verifies, relocatable, the same patch release on every build, no
# third-party apt repository (deadsnakes) to trust in both stages. Only the interpreter comes from uv; the
# packages are installed by pip with the Makefile's own commands.
ARG PYTHON_VERSION=3.11.15
# The Makefile upgrades these unpinned; the image pins what the dev venv has.
ARG PIP_VERSION=26.3
ARG SETUPTOOLS_VERSION=84.2.1
ARG WHEEL_VERSION=0.48.0

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive

# javac and jar for the /ping plugin (serving/plugins/build.sh). apt packages follow the base image (pin its
# digest for reproducible builds); exact apt versions would vanish from the archive within weeks.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates openjdk-17-jdk-headless \
 && rm -rf /var/lib/apt/lists/*

COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python
RUN uv python install --no-bin "${PYTHON_VERSION}" \
 && "$(uv python find --managed-python --no-project "${PYTHON_VERSION}")" -m venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src

# The Makefile's install recipe, less requirements/test.txt. One layer per step, on purpose: a change to
# runtime.txt or sam2.txt keeps the torch layer (hence the hadolint pragma for consecutive RUNs).
# hadolint global ignore=DL3059
COPY requirements/ requirements/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "pip==${PIP_VERSION}" "setuptools==${SETUPTOOLS_VERSION}" "wheel==${WHEEL_VERSION}"
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -r requirements/torch.txt -c requirements/constraints.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -r requirements/runtime.txt -c requirements/constraints.txt
# sam2 is an sdist pinned by hash; built against the torch above, without its CUDA extension.
RUN --mount=type=cache,target=/root/.cache/pip \
    SAM2_BUILD_CUDA=0 pip install --no-build-isolation --no-deps --require-hashes -r requirements/sam2.txt

# The segserve package, installed (not editable): the handlers inside the model archives import it. The image has
# no deploy/ (the deployment CLI runs from a checkout), so the segserve-deploy script pyproject declares for it is
# removed rather than left to fail with ModuleNotFoundError (no -f: a renamed script fails the build here).
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
 && rm /opt/venv/bin/segserve-deploy \
 && pip check

# The endpoint plugins (/ping, /execution-parameters), compiled against this venv's TorchServe.
COPY serving/plugins/ serving/plugins/
RUN rm -rf serving/plugins/build \
 && PYTHON=/opt/venv/bin/python bash serving/plugins/build.sh

# --- runtime -------------------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG VCS_REF=unknown
ARG CUDA_IMAGE
LABEL org.opencontainers.image.title="segserve" \
      org.opencontainers.image.description="SAM2 and Lang-SAM (GroundingDINO + SAM2) segmentation on TorchServe 0.12.0, for SageMaker GPU endpoints" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.base.name="${CUDA_IMAGE}" \
      com.amazonaws.sagemaker.capabilities.accept-bind-to-port="true" \
      com.amazonaws.sagemaker.capabilities.multi-models="false" \
      ai.segserve.sagemaker.inference-ami-version="al2023-ami-sagemaker-inference-gpu-4-1"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive

# Java 17 for TorchServe's frontend, curl for the entrypoint, tini as PID 1 (forwards SIGTERM to the entrypoint,
# which stops TorchServe's process group; reaps orphaned workers). The man1 folder: the JRE's postinst links
# into it and Ubuntu's minimal images leave it out.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl openjdk-17-jre-headless tini \
 && rm -rf /var/lib/apt/lists/*

# The interpreter at the same path as in the build stage: the venv points at it.
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv

# Handlers are not copied: build_model_store.py puts each handler and torchserve_io.py into its model folder,
# which arrives with the model data in /opt/ml/model.
COPY --from=build /src/serving/plugins/build/segserve-plugins.jar /opt/segserve/plugins/segserve-plugins.jar
COPY config.properties /opt/segserve/config.properties
COPY --chmod=0755 serving/entrypoint.sh /opt/segserve/entrypoint.sh
COPY serving/log4j2.xml /opt/segserve/log4j2.xml
COPY --chmod=0755 serving/container/cuda-compat.sh /opt/segserve/cuda-compat.sh

# The entrypoint's defaults, spelled out; the run dir (logs, pid file, generated config) is created at start in
# /tmp, writable by any user. HF_HUB_OFFLINE: weights come only from /opt/ml/model, never from the Hub.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    SEGSERVE_MODEL_STORE=/opt/ml/model \
    SEGSERVE_CONFIG=/opt/segserve/config.properties \
    SEGSERVE_PLUGINS=/opt/segserve/plugins \
    SEGSERVE_RUN_DIR=/tmp/segserve

# Fail the build, not the endpoint, if the stack cannot load.
RUN PYTHONDONTWRITEBYTECODE=1 python -c "import segserve, sam2, torch, torchvision, transformers, ts" \
 && java -version \
 && tini --version

RUN groupadd --system --gid 10001 segserve \
 && useradd --system --uid 10001 --gid segserve --create-home --home-dir /home/segserve --shell /usr/sbin/nologin segserve
USER 10001:10001
WORKDIR /home/segserve

EXPOSE 8080
# SageMaker ignores HEALTHCHECK and polls /ping itself; this one is for `docker run` and other orchestrators.
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["/bin/sh", "-c", "curl -fsS -o /dev/null http://127.0.0.1:${SAGEMAKER_BIND_TO_PORT:-8080}/ping || exit 1"]

ENTRYPOINT ["/usr/bin/tini", "--", "/opt/segserve/cuda-compat.sh", "/opt/segserve/entrypoint.sh"]
CMD ["serve"]
