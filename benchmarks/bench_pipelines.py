"""Per-stage CPU timings of the SAM2 and Lang-SAM pipelines, loaded through the production loaders.

Every measured variant runs once per round, in the same order, so drift on a noisy machine hits all of
them alike; a warm-up round is discarded. The RATIOS section pairs variants within each round and prints
the median of those per-round ratios (with their range) and the ratio of the minimums: compare ratios
between machines, not absolute milliseconds.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from segserve.contract.errors import WeightsError
from segserve.contract.requests import DetectionParams
from segserve.models.grounding_dino import GroundingDinoDetector
from segserve.models.langsam_pipeline import LangSamPipeline
from segserve.models.runtime import Runtime, StageTimer
from segserve.models.sam2_pipeline import Sam2Pipeline, Sam2Prompt
from segserve.weights.bundle import WeightsBundle

TEXT_PROMPT = "a dog. black jeans"  # two phrases, words in the random models' vocabulary
ALL_QUERIES = 900  # GroundingDINO's query count: a cap that keeps every detection

EXAMPLES = """examples:
  .venv/bin/segserve-weights prepare full --dir weights     # once: random real-size models (~850 MB)
  .venv/bin/python benchmarks/bench_pipelines.py
  .venv/bin/python benchmarks/bench_pipelines.py --repeats 5 --boxes 1,8,64 --threads 1
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=Path("weights/full"),
                        help="a weights bundle folder with manifest.json (default: weights/full)")
    parser.add_argument("--repeats", type=int, default=3, help="measured rounds after one warm-up (default: 3)")
    parser.add_argument("--image-size", default="1024x768", type=_size, metavar="WxH",
                        help="synthetic image width x height in pixels (default: 1024x768)")
    parser.add_argument("--boxes", default="1,4,16,50", type=_counts, metavar="N,N,...",
                        help="box counts for the batched box decode; the largest is also the RSS probe "
                             "and the batching ratio compares it with the smallest (default: 1,4,16,50)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or min(int(match[1]), int(match[2])) < 64:
        raise argparse.ArgumentTypeError(f"expected WxH with both sides >= 64, got {text!r}")
    return int(match[1]), int(match[2])


def _counts(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if counts[0] < 1:
        raise argparse.ArgumentTypeError("box counts must be at least 1")
    return counts


def synthetic_scene(width: int, height: int) -> tuple[np.ndarray, dict[str, Sam2Prompt]]:
    """A deterministic RGB picture (gradients, a rectangle, a disc, stripes) and prompts on its shapes."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], axis=-1) * 255
    rect = np.array([0.10 * width, 0.20 * height, 0.40 * width, 0.55 * height], dtype=np.float32)
    image[int(rect[1]):int(rect[3]), int(rect[0]):int(rect[2])] = (220, 40, 40)
    disc_xy, radius = np.array([0.68 * width, 0.60 * height], dtype=np.float32), 0.18 * min(width, height)
    image[(xx - disc_xy[0]) ** 2 + (yy - disc_xy[1]) ** 2 < radius**2] = (30, 40, 210)
    image[int(0.80 * height):int(0.90 * height)] *= ((xx[0] // 16) % 2)[:, None] * 0.5 + 0.5
    rect_center = (rect[:2] + rect[2:]) / 2
    prompts = {
        "1 point, multimask (3 masks)": Sam2Prompt(points=disc_xy[None], labels=np.array([1])),
        "1 box, single mask": Sam2Prompt(box=rect),
        "+/- points, single mask": Sam2Prompt(points=np.stack([disc_xy, rect_center]), labels=np.array([1, 0])),
    }
    return image.astype(np.uint8), prompts


def random_boxes(count: int, width: int, height: int) -> np.ndarray:
    """`count` deterministic xyxy boxes inside the image, 32 px to half the image per side."""
    rng = np.random.default_rng(0)
    sizes = rng.uniform(32, [width / 2, height / 2], size=(count, 2))
    corners = rng.uniform(0, 1, size=(count, 2)) * ([width, height] - sizes)
    return np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)


def cpu_model() -> str:
    match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    return match[1].strip() if match else "unknown"


def peak_rss_growth_mib(fn) -> float:
    """Peak resident memory above the starting RSS while `fn` runs (Linux: resets VmHWM via clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")
    start = psutil.Process().memory_info().rss
    fn()
    peak_kib = int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())[1])
    return (peak_kib * 1024 - start) / 2**20


def import_model_libraries() -> None:
    """Import sam2 and transformers' GroundingDINO up front, so the load times are the weights alone."""
    import sam2.build_sam  # noqa: F401
    from transformers import AutoProcessor, GroundingDinoForObjectDetection  # noqa: F401


def seconds(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def boxes_stage(boxes: np.ndarray) -> str:
    return f"sam2 predict_boxes({len(boxes)})"


def one_round(sam2, detector, langsam, image, prompts, box_sets) -> tuple[dict[str, float], dict[str, float]]:
    """Every variant once, in a fixed order → ({variant: ms}, Lang-SAM's StageTimer stages in ms)."""
    ms: dict[str, float] = {}

    def timed(name, fn):
        start = time.perf_counter()
        result = fn()
        sam2.runtime.synchronize()
        ms[name] = (time.perf_counter() - start) * 1000
        return result

    embedding = timed("sam2 encode", lambda: sam2.encode(image))
    for name, prompt in prompts.items():
        timed(f"sam2 decode: {name}", lambda: sam2.predict(embedding, prompt, multimask=prompt.box is None))
    for boxes in box_sets:
        timed(boxes_stage(boxes), lambda: sam2.predict_boxes(embedding, boxes))
    timed("gdino detect (default cap)", lambda: detector.detect(image, TEXT_PROMPT))
    timer = StageTimer(sam2.runtime)
    timed("langsam end to end", lambda: langsam.predict(image, TEXT_PROMPT, timer=timer))
    return ms, timer.stages


def row(name: str, values: list[float], note: str = "") -> str:
    return f"  {name:<44}{statistics.median(values):>10.1f}{min(values):>10.1f}  {note}"


def ratio_row(name: str, numerators: list[float], denominators: list[float], meaning: str) -> str:
    """Median of the per-round ratios, their range, and min/min (noise only ever adds time)."""
    ratios = [n / d for n, d in zip(numerators, denominators)]
    spread, of_mins = f"[{min(ratios):.2f}..{max(ratios):.2f}]", min(numerators) / min(denominators)
    return f"  {name:<44}{statistics.median(ratios):>9.2f}x {spread:>15} {of_mins:>9.2f}x  {meaning}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = args.image_size
    runtime = Runtime.select("cpu")
    try:
        bundle = WeightsBundle.load(args.weights)
    except WeightsError as exc:
        sys.exit(f"bench_pipelines: {exc.message}")

    _, import_s = seconds(import_model_libraries)
    sam2, sam2_load_s = seconds(
        lambda: Sam2Pipeline.from_checkpoint(bundle.sam2_checkpoint, bundle.sam2_config, runtime))
    detector, gdino_load_s = seconds(lambda: GroundingDinoDetector.from_pretrained(bundle.grounding_dino_dir, runtime))
    langsam = LangSamPipeline(detector, sam2)  # what from_bundle builds, without loading both models twice

    image, prompts = synthetic_scene(width, height)
    box_sets = [random_boxes(n, width, height) for n in args.boxes]

    print("== environment ==")
    print(f"  torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(interop {torch.get_num_interop_threads()}), device {runtime.device}, fp32")
    print(f"  CPU: {cpu_model()}, {psutil.cpu_count()} logical cores, {psutil.virtual_memory().total / 2**30:.0f} GiB")
    print(f"  image {width}x{height} (synthetic), repeats {args.repeats} after 1 warm-up round, "
          f"text prompt {TEXT_PROMPT!r}")
    for label, model in (("SAM2", sam2.model), ("GroundingDINO", detector.model)):
        print(f"  {label} params: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M")
    print(f"  weights: {args.weights} ({bundle.variant}): {bundle.sam2_checkpoint.name}, "
          f"{bundle.grounding_dino_dir.name}")

    print("\n== load (s) ==")
    print(f"  {'imports (sam2, transformers)':<44}{import_s:>10.2f}")
    print(f"  {'Sam2Pipeline.from_checkpoint':<44}{sam2_load_s:>10.2f}")
    print(f"  {'GroundingDinoDetector.from_pretrained':<44}{gdino_load_s:>10.2f}")

    rounds = [one_round(sam2, detector, langsam, image, prompts, box_sets) for _ in range(1 + args.repeats)][1:]
    ms = {name: [r[0][name] for r in rounds] for name in rounds[0][0]}
    stages = {name: [r[1].get(name, 0.0) for r in rounds] for name in rounds[0][1]}

    largest, embedding = box_sets[-1], sam2.encode(image)
    rss_mib = peak_rss_growth_mib(lambda: sam2.predict_boxes(embedding, largest))
    every, every_s = seconds(lambda: detector.detect(image, TEXT_PROMPT, DetectionParams(max_detections=ALL_QUERIES)))

    print(f"\n== stages (ms) ==\n  {'':<44}{'median':>10}{'min':>10}")
    notes = {"langsam end to end": f"{min(DetectionParams().max_detections, len(every))} boxes decoded (default cap)"}
    for boxes in box_sets:
        notes[boxes_stage(boxes)] = f"{statistics.median(ms[boxes_stage(boxes)]) / len(boxes):.1f} ms/box (median)"
    for name, values in ms.items():
        print(row(name, values, notes.get(name, "")))
    print(f"  {'gdino detect (max_detections=900), once':<44}{every_s * 1000:>10.1f}{'':>10}  "
          f"{len(every)} of {ALL_QUERIES} queries pass box_threshold 0.3")
    print(f"  peak RSS growth during predict_boxes({len(largest)} boxes): {rss_mib:.0f} MiB")

    print("\n  Lang-SAM stage breakdown (StageTimer)")
    for name, values in stages.items():
        print(row(f"  {name}", values))
    other = [total - sum(parts) for total, *parts in zip(ms["langsam end to end"], *stages.values())]
    print(row("  other (pre/post-processing, outside stages)", other))

    enc, gdino = ms["sam2 encode"], ms["gdino detect (default cap)"]
    one_point, one_box = (ms[f"sam2 decode: {name}"] for name in list(prompts)[:2])
    few, many = ([v / len(b) for v in ms[boxes_stage(b)]] for b in (box_sets[0], largest))
    print(f"\n== ratios ==\n  {'':<44}{'median':>10} {'[range]':>15} {'min/min':>10}")
    print(ratio_row("sam2 encode / decode (1 point, 3 masks)", enc, one_point, "the encoder costs ~N x a decode"))
    print(ratio_row("sam2 encode / decode (1 box)", enc, one_box, ""))
    print(ratio_row(f"ms/box at {len(box_sets[0])} / at {len(largest)} boxes", few, many,
                    "batching gain: > 1 means batched boxes are cheaper each"))
    print(ratio_row("gdino detect / sam2 encode", gdino, enc, ""))
    print(ratio_row("langsam end to end / sam2 encode", ms["langsam end to end"], enc, ""))


if __name__ == "__main__":
    main()
