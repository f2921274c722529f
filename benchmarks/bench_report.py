"""The report of bench_serving.py: a table of every variant, the server's own stage timings, the goals, the line."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone

import torch


@dataclass(frozen=True)
class Sample:
    ms: float  # wall time seen by the client (or the in-process call)
    stages: dict[str, float] = field(default_factory=dict)  # the answer's timings_ms
    cache: str | None = None  # the answer's "cache" field, when it has one
    image_id: str = ""
    masks: int = 0
    response_bytes: int = 0


def wall(sample: Sample) -> float:
    return sample.ms


# P6 compares the stages whose work grows with the detections (SAM2's decoder for the boxes, mask encoding,
# renderings), not the wall time, which GroundingDINO's fixed cost would dilute.
PER_DETECTION_STAGES = ("sam2_mask_decoder", "encode_masks", "render_images")


def per_detection(sample: Sample) -> float:
    return sum(sample.stages.get(name, 0.0) for name in PER_DETECTION_STAGES)


# (name, numerator, denominator, goal, higher is better, what is compared)
RATIOS = (
    ("P1", "sam2 click, new 1024x768 image", "sam2 click, cached 1024x768", 25.0, True, wall),
    ("P2", "sam2 click, cached 1024x768", "sam2 click, in-process 1024x768", 1.10, False, wall),
    ("P3", "sam2 click, cached 4000x3000", "sam2 click, cached 1024x768", 1.3, False, wall),
    ("P4", "sam2 first click on a langsam image_id", "sam2 click, cached 1024x768", 1.2, False, wall),
    ("P6", "langsam, same image, 5 detections", "langsam, same image, 1 detection", 1.3, False, per_detection),
)
P5_GOAL_S = 20.0
# SAM 3's, when the server deploys it (None: reported, no goal)
SAM3_RATIOS = (
    ("S1", "sam3 text, cached image, new phrase", "sam3 text, new image", 0.25, False, wall),
    ("S2", "sam3 first click on a sam3 text image_id", "sam3 second click on that image_id", 1.2, False, wall),
    ("S3", "sam3, cached image, 5 phrases", "sam3, cached image, 1 phrase", None, False, wall),
)


def p50(samples: list[Sample], measure=wall) -> float:
    return statistics.median(measure(s) for s in samples)


R_GOAL_MB, D_GOAL = 600.0, 0.0


def print_report(samples: dict[str, list[Sample]], ready_s: float, batching: list[str] | None, machine: str,
                 warmups: list[str], core: dict | None = None) -> None:
    print(f"\n== segserve bench, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC ==")
    print(f"  {machine}; torch {torch.__version__}; full random models (sam2.1 small, grounding-dino-tiny, SAM 3 when the weights have it)")
    print(f"  /ping 200 after {ready_s:.1f} s from the entrypoint's start")
    for line in warmups:
        print(f"  {line}")

    print(f"\n  {'variant':<42}{'n':>3}{'p50 ms':>10}{'min ms':>10}{'cache':>7}{'reply KB':>10}  server stages (p50 ms)")
    for name, values in samples.items():
        caches = sorted({s.cache for s in values if s.cache})
        kb = statistics.median(s.response_bytes for s in values) / 1024
        print(f"  {name:<42}{len(values):>3}{p50(values):>10.1f}{min(s.ms for s in values):>10.1f}"
              f"{'/'.join(caches) or '-':>7}{kb:>10.0f}  {stage_summary(values)}")

    results, missed = {}, []
    print(f"\n  {'':<4}{'ratio of p50s':>14}{'per-round range':>18}{'goal':>8}")
    ratios = RATIOS + tuple(r for r in SAM3_RATIOS if r[1] in samples)
    for key, numerator, denominator, goal, higher, measure in ratios:
        ratio = p50(samples[numerator], measure) / p50(samples[denominator], measure)
        # Per round only where both sides ran every round (langsam rounds are fewer than click rounds).
        same_rounds = len(samples[numerator]) == len(samples[denominator])
        per_round = ([measure(n) / measure(d) for n, d in zip(samples[numerator], samples[denominator])]
                     if same_rounds else [])
        met = goal is None or (ratio >= goal if higher else ratio <= goal)
        results[key] = ratio
        missed += [] if met else [key]
        spread = f"[{min(per_round):.2f}..{max(per_round):.2f}]" if per_round else "-"
        shown_goal = "-" if goal is None else ('>= ' if higher else '<= ') + f'{goal:g}'
        verdict = "reported" if goal is None else ("met" if met else "MISSED")
        print(f"  {key:<4}{ratio:>14.2f}{spread:>18}{shown_goal:>8}  {verdict}  {numerator} / {denominator}")
    p5_met = ready_s <= P5_GOAL_S
    missed += [] if p5_met else ["P5"]
    core = core or {}
    starts = "[" + "..".join(f"{s:.1f}" for s in (min(core["P5_starts"]), max(core["P5_starts"]))) + "]" \
        if core.get("P5_starts") else "-"
    print(f"  {'P5':<4}{ready_s:>13.1f}s{starts:>18}{f'<= {P5_GOAL_S:g}s':>8}  {'met' if p5_met else 'MISSED'}"
          "  entrypoint start → /ping 200 (median of the starts)")
    if "P5_two_routers" in core:
        print(f"  {'':<4}{core['P5_two_routers']:>13.1f}s{'':>18}{'':>8}  reported  the same start with 2 router "
              "workers (SEGSERVE_WORKERS_ROUTER=2)")
    if "R" in core:
        r_met = core["R"] <= R_GOAL_MB
        missed += [] if r_met else ["R"]
        print(f"  {'R':<4}{core['R']:>12.0f}MB{'':>18}{f'<= {R_GOAL_MB:g}':>8}  {'met' if r_met else 'MISSED'}"
              "  summed PSS of the router workers")
    if "D" in core:
        d_met = core["D"] <= D_GOAL
        missed += [] if d_met else ["D"]
        print(f"  {'D':<4}{core['D']:>14.2f}{'':>18}{'= 0':>8}  {'met' if d_met else 'MISSED'}"
              f"  GET /models/... per cached click ({core['D_lines']} access-log lines over the clicks)")
    if batching:
        print("\n  TorchServe batching (sam2 direct, /predictions/<model>, concurrent cached clicks)")
        for line in batching:
            print(f"  {line}")
    print(f"\n  goals missed: {', '.join(missed) if missed else 'none'}")
    print(f"bench: P1={results['P1']:.1f}x P2={results['P2']:.2f} P3={results['P3']:.2f} P4={results['P4']:.2f} "
          f"P5={ready_s:.1f}s P6={results['P6']:.2f}"
          + "".join(f" {key}={results[key]:.2f}" for key in ("S1", "S2", "S3") if key in results)
          + (f" R={core['R']:.0f}MB" if "R" in core else "") + (f" D={core['D']:.2f}" if "D" in core else ""))


def stage_summary(values: list[Sample]) -> str:
    """Each stage the server reported, p50 over the samples that ran it (total last)."""
    names = [n for n in dict.fromkeys(k for s in values for k in s.stages) if n != "total"]
    parts = [f"{n} {statistics.median(s.stages[n] for s in values if n in s.stages):.0f}" for n in names]
    totals = [s.stages["total"] for s in values if "total" in s.stages]
    return ", ".join(parts + ([f"total {statistics.median(totals):.0f}"] if totals else []))
