#!/usr/bin/env bash
# The container's entrypoint (`docker run IMAGE serve`, as SageMaker starts it) and `make serve`'s.
#
# Starts TorchServe in the foreground with the router as its single startup model, registers langsam,
# sam2 and (when the model store has it) sam3 once the management API answers, and stops everything on
# SIGTERM/SIGINT (SageMaker sends SIGTERM, then SIGKILL 30 s later). /ping stays 503 until every one of
# these models has a loaded worker.
#
# Environment (defaults are the container's):
#   SEGSERVE_MODEL_STORE   model store folder                  (/opt/ml/model)
#   SEGSERVE_CONFIG        base config.properties              (/opt/segserve/config.properties)
#   SEGSERVE_PLUGINS       folder with segserve-plugins.jar     (/opt/segserve/plugins)
#   SEGSERVE_RUN_DIR       logs, pid file, generated config    (/tmp/segserve)
#   SAGEMAKER_BIND_TO_PORT inference port                      (8080)
#   SEGSERVE_BIND_ADDRESS  inference address                   (0.0.0.0: SageMaker reaches the container there;
#                                                               `make serve` sets 127.0.0.1)
#   SEGSERVE_MANAGEMENT_PORT / SEGSERVE_METRICS_PORT           (8081 / 8082)
#   SEGSERVE_GRPC_PORTS    gRPC inference,management ports      (7070,7071; loopback only)
#   SEGSERVE_WORKERS_LANGSAM   langsam workers (1)
#   SEGSERVE_WORKERS_SAM2      sam2 workers (1). Each has its own embedding cache, so N > 1 registers N
#                              single-worker models sam2-0..N-1 and each image goes to its home one by id
#   SEGSERVE_WORKERS_SAM3      sam3 workers (1), the same way (sam3-0..N-1); sam3 is served only when the
#                              model store has it (weights with SAM 3: build_model_store.py)
#   SEGSERVE_WORKERS_ROUTER    router workers (what the models can hold + 1: serving/model-config/router.yaml)
#   SAGEMAKER_BATCH, SAGEMAKER_MAX_PAYLOAD_IN_MB               batch transform: raise the request limit
#   SEGSERVE_BATCH_TIMEOUT_S   the router's timeout in batch mode (600; match InvocationsTimeoutInSeconds)
#   SEGSERVE_UI_DIR        the web UI's folder, served at /ui/   (unset: no UI, as in the container)
#   SEGSERVE_DEFAULT_ATTRIBUTES  custom attributes for raw images sent without any (batch transform over a
#                                bucket cannot set them), e.g. "action=langsam;text_prompt=person"
#   SEGSERVE_MAX_PIXELS, SEGSERVE_MAX_IMAGE_BYTES, SEGSERVE_FETCH_TIMEOUT_S, SEGSERVE_ALLOW_PRIVATE_IMAGE_URLS
#                              image limits, passed on to every worker (src/segserve/settings.py; README table)
set -euo pipefail

case "${1:-serve}" in
  serve) ;;
  *) exec "$@" ;;  # any other command runs as given (e.g. a shell for debugging)
esac

model_store="${SEGSERVE_MODEL_STORE:-/opt/ml/model}"
base_config="${SEGSERVE_CONFIG:-/opt/segserve/config.properties}"
plugins="${SEGSERVE_PLUGINS:-/opt/segserve/plugins}"
run_dir="${SEGSERVE_RUN_DIR:-/tmp/segserve}"
port="${SAGEMAKER_BIND_TO_PORT:-8080}"
bind="${SEGSERVE_BIND_ADDRESS:-0.0.0.0}"
management_port="${SEGSERVE_MANAGEMENT_PORT:-8081}"
metrics_port="${SEGSERVE_METRICS_PORT:-8082}"
IFS=, read -r grpc_inference_port grpc_management_port <<< "${SEGSERVE_GRPC_PORTS:-7070,7071}"
management="http://127.0.0.1:${management_port}"
# Console: requests, warnings and errors; the rest in the run dir's logs/ (the file explains).
log_config="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/log4j2.xml"

for needed in "$model_store/router" "$model_store/langsam" "$model_store/sam2" "$base_config" "$plugins" \
              "$log_config"; do
  [[ -e "$needed" ]] || { echo "entrypoint: $needed is missing" >&2; exit 1; }
done
mkdir -p "$run_dir"
# Absolute paths: TorchServe runs from the run dir.
model_store="$(cd "$model_store" && pwd)"
plugins="$(cd "$plugins" && pwd)"
base_config="$(cd "$(dirname "$base_config")" && pwd)/$(basename "$base_config")"
if [[ -n "${SEGSERVE_UI_DIR:-}" ]]; then
  [[ -f "$SEGSERVE_UI_DIR/index.html" ]] || { echo "entrypoint: SEGSERVE_UI_DIR=$SEGSERVE_UI_DIR has no index.html" >&2; exit 1; }
  SEGSERVE_UI_DIR="$(cd "$SEGSERVE_UI_DIR" && pwd)"  # TorchServe runs from the run dir
  export SEGSERVE_UI_DIR
fi

# Request limit: SageMaker real time allows 6 MB; a batch transform job tells us its own limit.
# A batch job's response (one line per record) may be as large as its request, and a multi-record
# request takes as long as its records: the router's timeout (default_response_timeout; the models keep
# their 60 s per record) follows SEGSERVE_BATCH_TIMEOUT_S, to match the job's InvocationsTimeoutInSeconds.
max_request=6553600
router_timeout=65
if [[ "${SAGEMAKER_BATCH:-false}" == "true" ]]; then
  max_request=$(( ${SAGEMAKER_MAX_PAYLOAD_IN_MB:-6} * 1024 * 1024 + 65536 ))
  router_timeout="${SEGSERVE_BATCH_TIMEOUT_S:-600}"
  # Each concurrent transform sends its records one by one to a model: more in flight than a model's
  # workers + queue would get `overloaded` lines. One running and one waiting per worker keeps it busy.
  fewest_workers=$(( ${SEGSERVE_WORKERS_LANGSAM:-1} < ${SEGSERVE_WORKERS_SAM2:-1} \
                     ? ${SEGSERVE_WORKERS_LANGSAM:-1} : ${SEGSERVE_WORKERS_SAM2:-1} ))
  export SAGEMAKER_MAX_CONCURRENT_TRANSFORMS="${SAGEMAKER_MAX_CONCURRENT_TRANSFORMS:-$(( fewest_workers + 1 ))}"
fi
max_response=$max_request
# Over max_request_size TorchServe's front end answers an empty 413 before reading the body, or resets the
# upload of a client that sent `Connection: close`. Up to twice the limit it takes the body instead, and
# the router refuses it with a 413 that says why (real time only: a batch job keeps to its own limit).
front_end_max_request=$max_request
[[ "${SAGEMAKER_BATCH:-false}" == "true" ]] || front_end_max_request=$(( max_request * 2 ))

config="$run_dir/config.properties"
{
  cat "$base_config"
  echo
  echo "# --- appended by serving/entrypoint.sh ---"
  echo "inference_address=http://${bind}:${port}"
  echo "management_address=${management}"
  echo "metrics_address=http://127.0.0.1:${metrics_port}"
  echo "grpc_inference_port=${grpc_inference_port}"
  echo "grpc_management_port=${grpc_management_port}"
  echo "model_store=${model_store}"
  echo "plugins_path=${plugins}"
  echo "max_request_size=${front_end_max_request}"
  echo "max_response_size=${max_response}"
  echo "default_response_timeout=${router_timeout}"
  # New versions may be registered only from archives inside the model store.
  echo "allowed_urls=^file://${model_store}/.*\$"
} > "$config"

# sam2, or N single-worker replicas of it (one embedding cache each; routing/affinity.py picks by image id).
sam2_workers="${SEGSERVE_WORKERS_SAM2:-1}"
[[ "$sam2_workers" =~ ^[1-9][0-9]*$ ]] || { echo "entrypoint: SEGSERVE_WORKERS_SAM2 must be >= 1" >&2; exit 1; }
sam2_models=sam2
if (( sam2_workers > 1 )); then
  sam2_models="$(seq -s, -f 'sam2-%g' 0 $(( sam2_workers - 1 )))"
fi
# sam3 likewise, when the model store has it (its weights are gated: an endpoint may go without).
sam3_models=""
if [[ -e "$model_store/sam3" ]]; then
  sam3_workers="${SEGSERVE_WORKERS_SAM3:-1}"
  [[ "$sam3_workers" =~ ^[1-9][0-9]*$ ]] || { echo "entrypoint: SEGSERVE_WORKERS_SAM3 must be >= 1" >&2; exit 1; }
  sam3_models=sam3
  (( sam3_workers == 1 )) || sam3_models="$(seq -s, -f 'sam3-%g' 0 $(( sam3_workers - 1 )))"
fi

# Router workers: one per request the deployed models can hold (workers + jobQueueSize each), plus one
# free to refuse the next at once (router.yaml explains). SEGSERVE_WORKERS_ROUTER overrides.
queue_of() {  # a model's jobQueueSize, from the model-config.yaml in its folder (0 if it sets none)
  local queue
  queue="$(sed -n 's/^jobQueueSize:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$model_store/$1/$1.yaml" 2>/dev/null | head -n 1)"
  echo "${queue:-0}"
}
held=$(( ${SEGSERVE_WORKERS_LANGSAM:-1} + $(queue_of langsam) + sam2_workers * (1 + $(queue_of sam2)) ))
[[ -z "$sam3_models" ]] || held=$(( held + sam3_workers * (1 + $(queue_of sam3)) ))
router_workers="${SEGSERVE_WORKERS_ROUTER:-$(( held + 1 ))}"
[[ "$router_workers" =~ ^[1-9][0-9]*$ ]] || { echo "entrypoint: SEGSERVE_WORKERS_ROUTER must be >= 1" >&2; exit 1; }
echo "default_workers_per_model=${router_workers}" >> "$config"

# What the router, langsam and the /ping plugin need to know.
export SEGSERVE_INFERENCE_URL="http://127.0.0.1:${port}"
export SEGSERVE_MANAGEMENT_URL="$management"
export SEGSERVE_SAM2_MODELS="$sam2_models"
export SEGSERVE_SAM3_MODELS="$sam3_models"
export SEGSERVE_REQUIRED_MODELS="router,langsam,${sam2_models}${sam3_models:+,$sam3_models}"
# A reply over max_response_size crashes the worker: the router refuses to build one.
export SEGSERVE_MAX_RESPONSE_BYTES="$max_response"
# ...and refuses a body over the limit with a clear 413.
export SEGSERVE_MAX_REQUEST_BYTES="$max_request"
# ...and starts no batch record it could not finish before its own timeout.
export SEGSERVE_ROUTER_TIMEOUT_S="$router_timeout"
# TorchServe writes its pid file to the temp dir and logs to ./logs: keep both in the run dir.
export TMPDIR="$run_dir" TEMP="$run_dir"
cd "$run_dir"

cat <<INFO
entrypoint: starting TorchServe (logs: $run_dir/logs)
  inference   http://127.0.0.1:${port}/invocations   (POST; also /predictions/<model>)
  readiness   http://127.0.0.1:${port}/ping          (503 until router, langsam, ${sam2_models}${sam3_models:+ and $sam3_models} are loaded)
  sam3        ${sam3_models:-not deployed (the weights have no SAM 3)}
  router      ${router_workers} workers (the requests langsam, ${sam2_models}${sam3_models:+ and $sam3_models} can hold, + 1)
  management  ${management}/models      (loopback only)
  metrics     http://127.0.0.1:${metrics_port}/metrics     (Prometheus; loopback only)
INFO
setsid torchserve --start --foreground --ncs --ts-config "$config" --model-store "$model_store" \
  --log-config "$log_config" &
server=$!

stop() {
  # `torchserve --stop` sends SIGTERM to Java alone, whose shutdown hook stops the workers; killing the
  # whole group at once would SIGKILL-race that. The group kill is the fallback for a hung server.
  echo "entrypoint: stopping TorchServe"
  # SageMaker sends SIGKILL 30 s after SIGTERM: at most 20 s for a graceful stop, 5 s for the launcher.
  timeout 20 torchserve --stop >/dev/null 2>&1 || true
  for _ in $(seq 10); do kill -0 "$server" 2>/dev/null || break; sleep 0.5; done
  if kill -0 -- "-$server" 2>/dev/null; then
    kill -TERM -- "-$server" 2>/dev/null || true
    sleep 1
    kill -KILL -- "-$server" 2>/dev/null || true
  fi
}
trap 'stop; exit 143' TERM
trap 'stop; exit 130' INT

register() {
  local folder="$1" name="$2" workers="$3"
  until curl -sf -o /dev/null "$management/models"; do
    kill -0 "$server" 2>/dev/null || return 1
    sleep 0.5
  done
  curl -sf -X POST "$management/models?url=${folder}&model_name=${name}&initial_workers=${workers}&synchronous=false" \
    >/dev/null \
    && echo "entrypoint: registered $name ($workers worker(s)); /ping turns 200 once it has loaded" \
    || echo "entrypoint: registering $name failed" >&2
}
register langsam langsam "${SEGSERVE_WORKERS_LANGSAM:-1}" &
for model in ${sam2_models//,/ }; do
  register sam2 "$model" 1 &
done
for model in ${sam3_models//,/ }; do
  register sam3 "$model" 1 &
done

# One line to act on, once /ping is 200: nobody should have to read TorchServe's log to know when to start.
announce_ready() {
  until curl -sf -o /dev/null "http://127.0.0.1:${port}/ping"; do
    kill -0 "$server" 2>/dev/null || return 0
    sleep 0.5
  done
  if [[ -n "${SEGSERVE_UI_DIR:-}" ]]; then
    echo "entrypoint: ready: open http://127.0.0.1:${port}/ui/ (web UI; API POST http://127.0.0.1:${port}/invocations)"
  else
    echo "entrypoint: ready: POST http://127.0.0.1:${port}/invocations"
  fi
}
announce_ready &

wait "$server"
