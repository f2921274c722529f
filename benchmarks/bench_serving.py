"""`make bench`: the interactive-latency goals of issue 6, measured on a live TorchServe with the full models.

The server is the container's own: the model store built from the `full` random weights (real architectures
and compute) with serving/build_model_store.py and serving/model-config, started by serving/entrypoint.sh on
free ports of 127.0.0.1 in its own run dir. Every request goes through `POST /invocations` (the router), as
SageMaker sends it; the in-process reference loads SAM2 through the production loader in this process, with
the torch threads a model worker gets. Each round runs every variant once, in a fixed order, so drift on a
shared machine hits all of them alike: compare the ratios, not the milliseconds.

    P1  p50 click on a new image / p50 click on a cached image                          goal >= 25x
    P2  p50 cached click via /invocations / p50 same prompt decoded+encoded in-process  goal <= 1.10
    P3  p50 cached click on a 4000x3000 photo / on a 1024x768 image (3 masks, RLE)      goal <= 1.3
    P4  p50 first click on a langsam answer's image_id / p50 cached click               goal <= 1.2
    P5  seconds from the entrypoint's start to /ping 200, median of --starts (3)        goal <= 20 s
    P6  p50 per-detection stages of langsam, 5 detections / 1, same image (masks checked) goal <= 1.3
    S1–S3  SAM 3's, when the weights have it (benchmarks/bench_sam3.py)
    R, D   router workers' memory and management calls per cached click (benchmarks/bench_core.py)

The last line printed is `bench: P1=<ratio>x P2=<ratio> P3=<ratio> P4=<ratio> P5=<seconds>s P6=<ratio>`
(then S1=… S2=… S3=… with SAM 3).
Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/ and benchmarks/ are plain folders of the repo, not installed

from bench_pipelines import cpu_model, synthetic_scene  # noqa: E402
from bench_batching import measure_batching  # noqa: E402
from bench_core import management_calls_per_click, router_pss_mb  # noqa: E402
from bench_sam3 import sam3_rounds  # noqa: E402
from bench_report import Sample, print_report  # noqa: E402
from tests.integration.conftest import build_store, start_entrypoint  # noqa: E402
from tests.integration.serving import b64  # noqa: E402
from segserve.weights.bundle import WeightsBundle  # noqa: E402

SMALL, LARGE = (1024, 768), (4000, 3000)  # width, height: a web image and a 12-megapixel phone photo
TEXT_PROMPT = "a dog. black jeans"
READY_WITHIN_S = 900
# The production timeouts (60 s per model call) measure nothing here, and on a shared 2-core machine one
# encode of a new picture can take longer: the bench's copy of serving/model-config waits 10x as long.
TIMEOUT_SCALE = 10

EXAMPLES = """examples:
  make bench                                        # prepares weights/full, then runs this
  .venv/bin/python benchmarks/bench_serving.py --rounds 3 --langsam-rounds 1 --no-batching   # quicker
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=REPO / "weights" / "full",
                        help="the weights bundle folder (default: weights/full)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the click variants (default: 5)")
    parser.add_argument("--langsam-rounds", type=int, default=2,
                        help="rounds of the langsam variants, 3 GroundingDINO passes each (default: 2)")
    parser.add_argument("--starts", type=int, default=3,
                        help="server starts timed for P5, the median reported (default: 3; the last one is benched)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled order of each round's variants")
    parser.add_argument("--sam3-rounds", type=int, default=3,
                        help="rounds of the sam3 variants, one SAM 3 encode each (default: 3; 0 skips them)")
    parser.add_argument("--no-batching", dest="batching", action="store_false",
                        help="skip the TorchServe batching comparison (batchSize 1 vs 4, concurrent clicks)")
    parser.add_argument("--work-dir", type=Path, default=REPO / "build" / "bench",
                        help="model store (rebuilt only when its inputs change) and run dirs (default: build/bench)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.langsam_rounds < 1 or args.starts < 1:
        parser.error("--rounds, --langsam-rounds and --starts must be at least 1")
    return args


class Progress:
    def __init__(self):
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def scene(size: tuple[int, int], seed: int) -> np.ndarray:
    """The synthetic scene, shifted by `seed` pixels: another picture (another image id) for every seed."""
    pixels, _ = synthetic_scene(*size)
    return np.roll(pixels, 7 * seed, axis=1)


class Client:
    """POST /invocations as SageMaker's InvokeEndpoint does, on one kept-alive connection."""

    def __init__(self, inference_url: str):
        self.url = inference_url + "/invocations"
        self.session = requests.Session()

    def call(self, payload: dict, expect_cache: str | None = None) -> Sample:
        start = time.perf_counter()
        reply = self.session.post(self.url, json=payload, timeout=300)
        seconds = time.perf_counter() - start
        if reply.status_code != 200:
            raise RuntimeError(f"{payload.get('action')} answered {reply.status_code}: {reply.text[:500]}")
        body = reply.json()
        if expect_cache and body.get("cache", expect_cache) != expect_cache:
            raise RuntimeError(f"expected a cache {expect_cache}, the answer says {body.get('cache')!r}")
        return Sample(seconds * 1000, body.get("timings_ms", {}), body.get("cache"), body["image"]["id"],
                      len(body.get("masks", [])), len(reply.content))


def click(image: dict, size: tuple[int, int]) -> dict:
    """A one-point click in the disc of the synthetic scene; `image` is {"image": b64} or {"image_id": id}."""
    return {"action": "sam2", **image, "x": 0.68 * size[0], "y": 0.60 * size[1]}


def known_image(client: Client, pixels: np.ndarray, size: tuple[int, int]) -> dict:
    """Send the picture once; the reference for later clicks: its image_id, or the picture again when the
    server keeps no embeddings (image_id answers 404: then every click encodes, and P1 says so)."""
    first = client.call(click({"image": b64(jpeg(pixels))}, size))
    by_id = {"image_id": first.image_id}
    probe = client.session.post(client.url, json=click(by_id, size), timeout=300)
    return by_id if probe.status_code == 200 else {"image": b64(jpeg(pixels))}


def in_process_click(weights: Path, pixels: np.ndarray, size: tuple[int, int]):
    """The same click as the server's, decoded and its masks encoded in this process (P2's reference): on the
    pixels the server decoded from the same JPEG, on the server's device (the CPU here), after a warm-up decode."""
    import torch

    from segserve.inference.answers import mask_entry
    from segserve.media.images import decode_image
    from segserve.models.runtime import Runtime
    from segserve.models.sam2_pipeline import Sam2Pipeline, Sam2Prompt
    from segserve.weights.bundle import WeightsBundle

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))  # what handlers/torchserve_io.py gives a worker
    bundle = WeightsBundle.load(weights)
    pipeline = Sam2Pipeline.from_checkpoint(bundle.sam2_checkpoint, bundle.sam2_config, Runtime.select("cpu"))
    embedding = pipeline.encode(decode_image(jpeg(pixels)))
    payload = click({}, size)
    prompt = Sam2Prompt(points=np.array([[payload["x"], payload["y"]]], np.float32), labels=np.array([1]))

    def run() -> Sample:
        start = time.perf_counter()
        prediction = pipeline.predict(embedding, prompt, multimask=True)
        order = np.argsort(-prediction.scores, kind="stable")
        masks = [mask_entry(prediction.masks[i], prediction.scores[i], "rle") for i in order]
        return Sample((time.perf_counter() - start) * 1000, {}, None, "", len(masks), 0)

    run()  # warm-up: the first decode in a process pays one-time costs the server's warm-up paid at its start
    return run


def click_rounds(args, client: Client, progress: Progress) -> tuple[dict[str, list[Sample]], bool]:
    """The click variants, and whether the server keeps embeddings (image_id works)."""
    small, large = scene(SMALL, 0), scene(LARGE, 0)
    progress("priming: the 1024x768 and 4000x3000 images are sent once (each encoded once)")
    small_ref, large_ref = known_image(client, small, SMALL), known_image(client, large, LARGE)
    cached = "image_id" in small_ref
    if not cached:
        progress("this server keeps no embeddings (image_id answers 404): every click sends the image again")
    progress("loading SAM2 in this process for the in-process reference")
    in_process = in_process_click(args.weights, small, SMALL)
    samples: dict[str, list[Sample]] = {name: [] for name in (  # the report's order, whatever the rounds' order
        "sam2 click, new 1024x768 image", "sam2 click, cached 1024x768", "sam2 click, cached 4000x3000",
        "sam2 click, in-process 1024x768")}
    order = random.Random(args.seed)
    for index in range(args.rounds):
        fresh = b64(jpeg(scene(SMALL, 1000 + index)))
        variants = [
            ("sam2 click, new 1024x768 image", lambda: client.call(click({"image": fresh}, SMALL), "miss")),
            ("sam2 click, cached 1024x768", lambda: client.call(click(small_ref, SMALL), "hit")),
            ("sam2 click, cached 4000x3000", lambda: client.call(click(large_ref, LARGE), "hit")),
            ("sam2 click, in-process 1024x768", in_process),
        ]
        order.shuffle(variants)  # not always "the first decode after an encode"
        for name, run in variants:
            samples.setdefault(name, []).append(run())
        progress(f"click round {index + 1}/{args.rounds}: " + ", ".join(
            f"{name.removeprefix('sam2 click, ')} {values[-1].ms:.0f} ms" for name, values in samples.items()))
    return samples, cached


def langsam_rounds(args, client: Client, cached: bool, progress: Progress) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {}
    for index in range(args.langsam_rounds):
        image = {"image": b64(jpeg(scene(SMALL, 2000 + index)))}
        text = {"action": "langsam", "text_prompt": TEXT_PROMPT}
        answer = client.call({**text, **image, "max_detections": 1}, "miss")
        samples.setdefault("langsam, new image, 1 detection", []).append(answer)
        same = {"image_id": answer.image_id} if cached else image
        first = client.call(click(same, SMALL), "hit")
        samples.setdefault("sam2 first click on a langsam image_id", []).append(first)
        counts = (1, 5) if index % 2 == 0 else (5, 1)  # alternate the order: drift cancels
        for count in counts:  # thresholds 0: exactly `count` detections, whatever the random weights score
            sample = client.call({**text, **same, "max_detections": count, "box_threshold": 0.0,
                                  "text_threshold": 0.0})
            if sample.masks != count:
                raise RuntimeError(f"langsam with max_detections={count} answered {sample.masks} masks")
            samples.setdefault(f"langsam, same image, {count} detection{'s' * (count > 1)}", []).append(sample)
        progress(f"langsam round {index + 1}/{args.langsam_rounds}: " + ", ".join(
            f"{name} {values[-1].ms:.0f} ms" for name, values in samples.items()))
    return samples


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    progress = Progress()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # Ctrl-C and kill both stop the server first
    if not (args.weights / "manifest.json").is_file():
        sys.exit(f"bench: no weights bundle at {args.weights}: run `.venv/bin/segserve-weights prepare full`")
    store = args.work_dir / "model_store"
    store.mkdir(parents=True, exist_ok=True)
    progress(f"model store from {args.weights} → {store} (skipped when up to date)")
    build_store(store, args.weights, bench_model_config(args.work_dir / "model-config"))
    subprocess.run(["bash", str(REPO / "serving" / "plugins" / "build.sh")], check=True, capture_output=True,
                   env={**os.environ, "PYTHON": sys.executable})
    def timed_start(label: str, **env: str):
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=args.work_dir))
        progress(f"{label}: serving/entrypoint.sh (run dir {run_dir}); /ping polled every 0.25 s")
        serving = start_entrypoint(run_dir, store, REPO / "serving" / "plugins" / "build", **env)
        try:
            seconds = serving.wait_healthy(READY_WITHIN_S)[-1].at
        except BaseException as exc:  # the helper fails like a test (pytest's Failed is a BaseException)
            serving.stop()
            sys.exit(f"bench: the server did not become ready: {exc}")
        progress(f"/ping 200 after {seconds:.1f} s")
        return serving, run_dir, seconds

    # What bounds P5: the same start with 2 router workers instead of 11 (each imports torch).
    probe, _, two_routers_s = timed_start("start with SEGSERVE_WORKERS_ROUTER=2", SEGSERVE_WORKERS_ROUTER="2")
    probe.stop()
    starts = []
    for start in range(args.starts):
        serving, run_dir, seconds = timed_start(f"start {start + 1}/{args.starts}")
        starts.append(seconds)
        if start < args.starts - 1:
            serving.stop()
    ready_s = statistics.median(starts)
    progress(f"P5: median of {[round(s, 1) for s in starts]} = {ready_s:.1f} s (2 router workers: {two_routers_s:.1f} s)")
    try:
        client = Client(serving.inference)
        samples, cached = click_rounds(args, client, progress)
        core = {"R": router_pss_mb(serving), "P5_starts": starts, "P5_two_routers": two_routers_s}
        if cached:
            core["D"], core["D_lines"] = management_calls_per_click(serving, client, click(
                {"image_id": samples["sam2 click, cached 1024x768"][0].image_id}, SMALL))
        progress(f"router workers' PSS {core['R']:.0f} MB; management calls per cached click {core.get('D', '-')}")
        samples.update(langsam_rounds(args, client, cached, progress))
        if args.sam3_rounds and WeightsBundle.load(args.weights).sam3_dir is not None:
            samples.update(sam3_rounds(args.sam3_rounds, client, scene, jpeg, b64, SMALL, progress))
        batching = None
        if args.batching:
            try:
                batching = measure_batching(serving, jpeg(scene(SMALL, 3000)), click({}, SMALL), progress)
            except RuntimeError as exc:  # a comparison, not a goal: report it and keep every figure measured so far
                batching = [f"not measured: {exc}"]
    finally:
        progress("stopping the server")
        serving.stop()
    machine = f"{cpu_model()}, {os.cpu_count()} logical cores"
    print_report(samples, ready_s, batching, machine, warmups(run_dir), core)


def bench_model_config(target: Path) -> Path:
    """serving/model-config with every request timeout TIMEOUT_SCALE times longer; nothing else changed."""
    target.mkdir(parents=True, exist_ok=True)
    for source in (REPO / "serving" / "model-config").glob("*.yaml"):
        config = yaml.safe_load(source.read_text())
        handler = config.setdefault("handler", {})
        # The router has no responseTimeout of its own (the entrypoint's default, 65 s): give it one.
        config["responseTimeout"] = config.get("responseTimeout", 65) * TIMEOUT_SCALE
        for key in ("forward_timeout_s", "sam2_timeout_s"):
            if key in handler:
                handler[key] *= TIMEOUT_SCALE
        text = yaml.safe_dump(config, sort_keys=False)
        if not (target / source.name).is_file() or (target / source.name).read_text() != text:
            (target / source.name).write_text(text)  # unchanged files keep the model store up to date
    return target


def warmups(run_dir: Path) -> list[str]:
    """The workers' own warm-up log lines (how long each took at start)."""
    log = run_dir / "logs" / "model_log.log"
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return [line.split(" - ", 1)[-1] for line in lines if "warm-up" in line]


if __name__ == "__main__":
    main()
