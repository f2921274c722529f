"""A weights bundle: one folder holding a SAM2.1 checkpoint, a GroundingDINO folder and optionally a SAM 3 folder
(the layout of its Hugging Face repository), described by manifest.json.

A model's archive holds a bundle with only the part it runs: sam2 the checkpoint, langsam GroundingDINO, sam3
its folder. SAM 3 is optional (its weights are gated): a bundle without it serves langsam and sam2.

Every way of getting weights (official download, local files, random models) ends in this format, so the
production loaders are what every test exercises. Paths in the manifest are relative to the bundle folder
unless absolute (local files that a user points at are used where they are, not copied).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from segserve.contract.errors import WeightsError

MANIFEST = "manifest.json"

# Meta's checkpoint file names → the matching config shipped inside the sam2 package.
SAM2_CONFIGS = {
    "sam2.1_hiera_tiny.pt": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small.pt": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus.pt": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large.pt": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


def sam2_config_for(checkpoint: Path) -> str:
    """The sam2 config for a checkpoint, chosen by Meta's file name (the only place the size is recorded)."""
    try:
        return SAM2_CONFIGS[checkpoint.name]
    except KeyError:
        names = ", ".join(SAM2_CONFIGS)
        raise WeightsError(
            f"cannot tell the SAM2.1 model size of {checkpoint.name!r}: keep Meta's file name, one of {names}"
        ) from None


@dataclass(frozen=True)
class WeightsBundle:
    variant: str  # "official", "tiny", "full" or "local"
    sam2_checkpoint: Path | None  # None in a GroundingDINO-only bundle (the langsam model's archive)
    sam2_config: str | None
    grounding_dino_dir: Path | None  # None in a SAM2-only bundle (the sam2 model's archive)
    sam3_dir: Path | None = None  # None: this endpoint deploys no sam3 model

    def write(self, root: Path) -> Path:
        """Write manifest.json into `root`; paths inside `root` are stored relative to it."""
        root.mkdir(parents=True, exist_ok=True)

        def rel(path: Path) -> str:
            # absolute(), not resolve(): a symlinked checkpoint must keep Meta's file name.
            path, base = path.absolute(), root.absolute()
            return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)

        manifest = {
            "variant": self.variant,
            "sam2": {"checkpoint": rel(self.sam2_checkpoint), "config": self.sam2_config} if self.sam2_checkpoint
            else None,
            "grounding_dino": rel(self.grounding_dino_dir) if self.grounding_dino_dir else None,
            "sam3": rel(self.sam3_dir) if self.sam3_dir else None,
        }
        path = root / MANIFEST
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, root: Path) -> "WeightsBundle":
        path = Path(root) / MANIFEST
        if not path.is_file():
            raise WeightsError(
                f"no weights bundle at {root} (it has no {MANIFEST}): make one with "
                "`segserve-weights prepare official|tiny|full` (see --help)"
            )
        try:
            manifest = json.loads(path.read_text())
            sam2 = manifest["sam2"]
            bundle = cls(
                variant=manifest["variant"],
                sam2_checkpoint=Path(root, sam2["checkpoint"]) if sam2 else None,
                sam2_config=sam2["config"] if sam2 else None,
                grounding_dino_dir=Path(root, manifest["grounding_dino"]) if manifest["grounding_dino"] else None,
                sam3_dir=Path(root, manifest["sam3"]) if manifest.get("sam3") else None,  # older manifests: none
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise WeightsError(f"{path} is not a valid weights manifest: {exc}") from None
        for needed in (bundle.sam2_checkpoint, bundle.grounding_dino_dir, bundle.sam3_dir):
            if needed is not None and not needed.exists():
                raise WeightsError(f"{path} names {needed}, which does not exist")
        return bundle
