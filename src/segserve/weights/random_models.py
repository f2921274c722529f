"""Random-weight models built from the real architectures' configs, saved in the production formats.

Model weights cannot be downloaded everywhere (CI, offline machines), so tests, benchmarks and offline
serving use these. They are written exactly like the real files — Meta's `{"model": state_dict}` SAM2.1
checkpoint and a transformers `save_pretrained` GroundingDINO folder with processor and tokenizer — so
the production loading code is what every test exercises.

- `tiny`: sam2.1_hiera_tiny + a deliberately small GroundingDINO and SAM 3 (fast tests).
- `full`: sam2.1_hiera_small + the grounding-dino-tiny architecture at real size (Swin-T + BERT-base,
  900 queries) + SAM 3's real architecture: the same compute as the real models, for benchmarks.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

from segserve.weights.bundle import SAM2_CONFIGS, WeightsBundle
from segserve.weights.random_sam3 import SAM3_DIR, write_sam3

VARIANTS = {"tiny": "sam2.1_hiera_tiny.pt", "full": "sam2.1_hiera_small.pt"}
GROUNDING_DINO_DIR = "grounding-dino"

# Words a test or demo prompt may use; anything else is split into characters by WordPiece.
_WORDS = (
    "a an the of and with on in black white red blue green jeans shirt dog cat person car "
    "tree sky road window door wheel face hand bag shoe hat"
).split()


def build_vocabulary() -> list[str]:
    """A small BERT WordPiece vocabulary: special tokens, punctuation, letters, digits and common words."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = ["##" + c for c in string.ascii_lowercase + string.digits]
    return specials + chars + pieces + _WORDS


def _grounding_dino_config(variant: str, vocab_size: int):
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    if variant == "full":
        # The default config is the grounding-dino-tiny architecture (Swin-T, BERT-base, d_model 256).
        return GroundingDinoConfig()
    backbone = SwinConfig(
        embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=7, out_indices=[2, 3, 4]
    )
    text = BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    # decoder_layers=1 with the default decoder_bbox_embed_share=True raises in transformers: use 2.
    return GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
    )


def write_grounding_dino(folder: Path, variant: str, seed: int) -> Path:
    """Save a random GroundingDINO with its processor and tokenizer, as `save_pretrained` lays them out."""
    from transformers import (
        BertTokenizer, GroundingDinoForObjectDetection, GroundingDinoImageProcessor, GroundingDinoProcessor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(build_vocabulary()) + "\n")
    # `vocab=` (or from_pretrained): transformers 5 silently ignores `vocab_file=` and maps all to [UNK].
    tokenizer = BertTokenizer(vocab=str(vocab_file), do_lower_case=True)
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer)

    config = _grounding_dino_config(variant, vocab_size=len(build_vocabulary()))
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    for written in folder.iterdir():  # transformers writes the weights 0600: readable by a server user too
        written.chmod(0o644)
    return folder


def write_sam2_checkpoint(path: Path, seed: int) -> Path:
    """Save a randomly initialised SAM2.1 model in Meta's checkpoint format, `{"model": state_dict}`."""
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    model = build_sam2(SAM2_CONFIGS[path.name], None, device="cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return path


def write_random_bundle(root: Path, variant: str, seed: int = 0) -> WeightsBundle:
    """Write the random models into `root` and the manifest that points at them."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown random variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    checkpoint = write_sam2_checkpoint(root / VARIANTS[variant], seed)
    grounding_dino = write_grounding_dino(root / GROUNDING_DINO_DIR, variant, seed)
    sam3 = write_sam3(root / SAM3_DIR, variant, seed)
    bundle = WeightsBundle(variant, checkpoint, SAM2_CONFIGS[checkpoint.name], grounding_dino, sam3)
    bundle.write(root)
    return bundle
