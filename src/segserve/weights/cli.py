"""`segserve-weights`: put a weights bundle in place (official download, your own files, or random models)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segserve.contract.errors import WeightsError
from segserve.weights.bundle import WeightsBundle

EPILOG = """examples:
  segserve-weights prepare official                      # SAM2.1 small + grounding-dino-tiny, downloaded once
  segserve-weights prepare official --sam2-size large --grounding-dino-model base
  segserve-weights prepare official --sam2-checkpoint ~/ckpt/sam2.1_hiera_large.pt \\
                                    --grounding-dino ~/models/grounding-dino-base   # your files, used in place
  segserve-weights prepare tiny                          # random tiny models for tests (no network)
  segserve-weights prepare full                          # random real-size models for benchmarks
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segserve-weights", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser(
        "prepare", help="create weights/<variant>/ with a manifest.json (skipped if it is already there)",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument("variant", choices=["official", "tiny", "full"],
                         help="official: real weights; tiny/full: random weights from the real configs")
    prepare.add_argument("--dir", type=Path, default=Path("weights"), help="parent folder (default: weights)")
    prepare.add_argument("--force", action="store_true", help="rebuild even if the bundle exists")
    official = prepare.add_argument_group("official weights")
    official.add_argument("--sam2-size", default="small", choices=["tiny", "small", "base_plus", "large"])
    official.add_argument("--grounding-dino-model", default="tiny", choices=["tiny", "base"])
    official.add_argument("--sam2-checkpoint", type=Path, help="use this local sam2.1_hiera_*.pt instead")
    official.add_argument("--grounding-dino", type=Path, help="use this local GroundingDINO folder instead")
    official.add_argument("--no-progress", action="store_true", help="no progress bars")
    random = prepare.add_argument_group("random weights")
    random.add_argument("--seed", type=int, default=0, help="the same seed gives the same weights")
    return parser


def prepare(args: argparse.Namespace) -> WeightsBundle:
    root = args.dir / args.variant
    if not args.force and (root / "manifest.json").is_file():
        bundle = WeightsBundle.load(root)
        print(f"weights already in place: {root} ({bundle.variant})")
        return bundle
    if args.variant in ("tiny", "full"):
        from segserve.weights.random_models import write_random_bundle

        print(f"building random {args.variant} models (seed {args.seed}) in {root} ...")
        return write_random_bundle(root, args.variant, args.seed)
    if (args.sam2_checkpoint is None) != (args.grounding_dino is None):
        raise WeightsError("give both --sam2-checkpoint and --grounding-dino, or neither")
    if args.sam2_checkpoint is not None:
        from segserve.weights.download import use_local_files

        return use_local_files(root, args.sam2_checkpoint.expanduser(), args.grounding_dino.expanduser())
    from segserve.weights.download import fetch_official

    return fetch_official(root, args.sam2_size, args.grounding_dino_model, progress=not args.no_progress)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        bundle = prepare(args)
    except WeightsError as exc:
        print(f"segserve-weights: {exc.message}", file=sys.stderr)
        return 2
    print(f"ready: {args.dir / args.variant} (SAM2 {bundle.sam2_checkpoint.name}, "
          f"GroundingDINO {bundle.grounding_dino_dir.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
