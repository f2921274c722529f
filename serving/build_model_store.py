"""Build the TorchServe model store: router, langsam, sam2 and (weights permitting) sam3, each an unpacked
(no-archive) model folder.

    python serving/build_model_store.py --weights weights/tiny --model-store model_store

`--archive-format no-archive` writes each model as a folder, so TorchServe does not unzip gigabytes of
weights again at every start. sam2 gets a SAM2-only bundle, langsam a GroundingDINO-only one (it asks the
sam2 model for its masks), the router none. A model whose inputs have not changed since its last build is skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from segserve.build_info import installed_version, write_build_info
from segserve.weights.bundle import WeightsBundle

REPO = Path(__file__).resolve().parent.parent
MODELS = ("router", "langsam", "sam2", "sam3")
STAMP = ".segserve-build.json"


def stage_weights(model: str, bundle: WeightsBundle, stage: Path) -> None:
    """The files `model` needs, as a bundle folder `weights/` (hard links where possible: no copies)."""
    weights = stage / "weights"
    weights.mkdir(parents=True)
    if model == "langsam":
        grounding_dino = weights / "grounding-dino"
        shutil.copytree(bundle.grounding_dino_dir, grounding_dino, copy_function=_link)
        WeightsBundle(bundle.variant, None, None, grounding_dino).write(weights)
    elif model == "sam3":
        sam3 = weights / "sam3"
        shutil.copytree(bundle.sam3_dir, sam3, copy_function=_link)
        WeightsBundle(bundle.variant, None, None, None, sam3).write(weights)
    else:
        checkpoint = _link(bundle.sam2_checkpoint, weights / bundle.sam2_checkpoint.name)
        WeightsBundle(bundle.variant, checkpoint, bundle.sam2_config, None).write(weights)


def _link(source, target):
    try:
        Path(target).hardlink_to(source)
    except OSError:  # another file system
        shutil.copy2(source, target)
    return Path(target)


def inputs_digest(model: str, weights_dir: Path, config_dir: Path, version: str) -> str:
    """What a build depends on: handler code, model config, the weights manifest, versions (model, segserve)."""
    digest = hashlib.sha256(f"{version} {installed_version()}".encode())
    files = [REPO / "handlers" / f"{model}_handler.py", REPO / "handlers" / "torchserve_io.py",
             config_dir / f"{model}.yaml"]
    if model != "router":
        files.append(weights_dir / "manifest.json")
        digest.update(str(weights_dir.resolve()).encode())
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build(
    model: str, weights_dir: Path, model_store: Path, config_dir: Path, version: str, force: bool, mar: bool = False
) -> bool:
    """Archive one model as a folder (or a .mar file, for registering new versions); False if up to date."""
    digest = inputs_digest(model, weights_dir, config_dir, version)
    stamp = model_store / model / STAMP
    if not mar and not force and stamp.is_file() and json.loads(stamp.read_text()).get("inputs") == digest:
        return False
    stage = REPO / "build" / "stage" / model
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    write_build_info(stage)  # checked by the handler at start (segserve.build_info)
    extra = [str(REPO / "handlers" / "torchserve_io.py"), str(stage)]
    if model != "router":
        stage_weights(model, WeightsBundle.load(weights_dir), stage)
    if not mar:
        shutil.rmtree(model_store / model, ignore_errors=True)
    # The archiver copies everything to $TMPDIR/<model> and deletes it after: a private TMPDIR, or two builds
    # on one machine (two checkouts, two test runs) delete each other's copy mid-archive.
    scratch = stage.parent / f"{model}.tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    subprocess.run(
        [
            str(Path(sys.executable).parent / "torch-model-archiver"), "--model-name", model, "--version", version,
            "--handler", str(REPO / "handlers" / f"{model}_handler.py"), "--extra-files", ",".join(extra),
            "--config-file", str(config_dir / f"{model}.yaml"),
            "--archive-format", "default" if mar else "no-archive", "--export-path", str(model_store), "--force",
        ],
        check=True, env={**os.environ, "TMPDIR": str(scratch)},
    )
    shutil.rmtree(stage)
    shutil.rmtree(scratch)
    # Readable by the container's non-root user, whatever umask or library wrote the files (0600 weights).
    subprocess.run(["chmod", "-R", "a+rX", str(model_store / (f"{model}.mar" if mar else model))], check=True)
    if not mar:
        stamp.write_text(json.dumps({"inputs": digest, "weights": str(weights_dir)}) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="a weights bundle folder, e.g. weights/tiny")
    parser.add_argument("--model-store", type=Path, default=Path("model_store"), help="default: model_store")
    parser.add_argument("--version", default="1.0", help="model version written into each archive")
    parser.add_argument("--model-config", type=Path, default=REPO / "serving" / "model-config",
                        help="folder of <model>.yaml files (default: serving/model-config)")
    parser.add_argument("--models", help="comma-separated subset of " + ",".join(MODELS) +
                        " (default: all that the weights have)")
    parser.add_argument("--force", action="store_true", help="rebuild even when nothing changed")
    parser.add_argument("--mar", action="store_true",
                        help="write <model>.mar files instead of folders: a new version to register through "
                             "the management API (TorchServe unpacks it once, at registration)")
    args = parser.parse_args(argv)
    args.model_store.mkdir(parents=True, exist_ok=True)
    bundle = WeightsBundle.load(args.weights)  # fail before building anything if the weights are not there
    models = args.models.split(",") if args.models else [m for m in MODELS if m != "sam3" or bundle.sam3_dir]
    for model in models:
        if model not in MODELS:
            parser.error(f"unknown model {model!r}")
    if "sam3" in models and bundle.sam3_dir is None:
        parser.error(f"{args.weights} has no SAM 3 (see `segserve-weights prepare --help`)")
    if bundle.sam3_dir is None and (args.model_store / "sam3").exists():
        shutil.rmtree(args.model_store / "sam3")
        print(f"model store {args.model_store}: removed sam3 (these weights have no SAM 3)")
    built = []
    for model in tqdm(models, desc="archiving", unit="model"):
        if build(model, args.weights, args.model_store, args.model_config, args.version, args.force, args.mar):
            built.append(model)
    print(f"model store {args.model_store}: built {', '.join(built) or 'nothing (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
