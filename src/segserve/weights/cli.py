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
  HF_TOKEN=hf_... segserve-weights prepare official      # ... and SAM 3 (gated: accept its licence first)
  segserve-weights prepare official --sam3-dir ~/models/sam3                         # your SAM 3 folder
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
    official.add_argument("--sam3", default="auto", choices=["auto", "sam3", "sam3.1", "none"],
                          help="SAM 3 from Hugging Face (gated: needs HF_TOKEN and its licence accepted). auto: "
                               "facebook/sam3 when a token is there, else skipped with what to do (default)")
    official.add_argument("--sam3-dir", type=Path, help="use this local SAM 3 folder (the Hub repo's layout)")
    official.add_argument("--no-progress", action="store_true", help="no progress bars")
    random = prepare.add_argument_group("random weights")
    random.add_argument("--seed", type=int, default=0, help="the same seed gives the same weights")
    return parser


def prepare(args: argparse.Namespace) -> WeightsBundle:
    root = args.dir / args.variant
    if not args.force and (root / "manifest.json").is_file():
        bundle = WeightsBundle.load(root)
        if bundle.sam3_dir is None and args.variant in ("tiny", "full"):
            return _add_random_sam3(root, bundle, args.seed)
        if bundle.sam3_dir is None and args.variant == "official" and _wants_sam3(args):
            return _with_sam3(root, bundle, args)
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

        bundle = use_local_files(root, args.sam2_checkpoint.expanduser(), args.grounding_dino.expanduser())
    else:
        from segserve.weights.download import fetch_official

        bundle = fetch_official(root, args.sam2_size, args.grounding_dino_model, progress=not args.no_progress)
    return _with_sam3(root, bundle, args)


def _wants_sam3(args: argparse.Namespace) -> bool:
    from segserve.weights.sam3_download import hf_token

    return args.sam3_dir is not None or args.sam3 in ("sam3", "sam3.1") or (args.sam3 == "auto" and bool(hf_token()))


def _with_sam3(root: Path, bundle: WeightsBundle, args: argparse.Namespace) -> WeightsBundle:
    """SAM 3 added to an official bundle as asked; `auto` without access skips it and says what to do."""
    from dataclasses import replace

    from segserve.weights.sam3_download import GATED_HELP, SAM3_REPOS, check_sam3_dir, fetch_sam3

    if args.sam3_dir is not None:
        folder = args.sam3_dir.expanduser().absolute()
        check_sam3_dir(folder)
    elif not _wants_sam3(args):
        if args.sam3 == "auto":
            print("SAM 3 skipped (no HF_TOKEN). " + GATED_HELP.format(repo=SAM3_REPOS["sam3"]), file=sys.stderr)
        return bundle
    else:
        model = "sam3" if args.sam3 == "auto" else args.sam3
        try:
            folder = fetch_sam3(root / "sam3", model, progress=not args.no_progress)
        except WeightsError as exc:
            if args.sam3 != "auto":
                raise  # asked for by name: an error (langsam and sam2 are in place all the same)
            print(f"SAM 3 skipped: {exc.message}", file=sys.stderr)
            return bundle
    bundle = replace(bundle, sam3_dir=folder)
    bundle.write(root)
    return bundle


def _add_random_sam3(root: Path, bundle: WeightsBundle, seed: int) -> WeightsBundle:
    """A random bundle from before SAM 3 joined: add its SAM 3, keep the rest as it is."""
    from dataclasses import replace

    from segserve.weights.random_sam3 import SAM3_DIR, write_sam3

    print(f"adding a random {bundle.variant} SAM 3 (seed {seed}) to {root} ...")
    bundle = replace(bundle, sam3_dir=write_sam3(root / SAM3_DIR, bundle.variant, seed))
    bundle.write(root)
    return bundle


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        bundle = prepare(args)
    except WeightsError as exc:
        print(f"segserve-weights: {exc.message}", file=sys.stderr)
        return 2
    sam3 = f", SAM 3 {bundle.sam3_dir.name}" if bundle.sam3_dir else ", no SAM 3"
    print(f"ready: {args.dir / args.variant} (SAM2 {bundle.sam2_checkpoint.name}, "
          f"GroundingDINO {bundle.grounding_dino_dir.name}{sam3})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
