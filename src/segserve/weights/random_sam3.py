"""A random-weight SAM 3 saved in the layout of its Hugging Face repository (facebook/sam3).

One folder that `Sam3Model`, `Sam3Processor`, `Sam3TrackerModel` and `Sam3TrackerProcessor` each load with
`from_pretrained(folder, local_files_only=True)`, as they load the real one. It is written from a
`Sam3VideoModel` (the detector and the tracker on one vision backbone), whose tracker weights
`save_pretrained` nests one level deeper (`tracker_model.tracker_model.`) than the Hub checkpoint and the
loaders expect (`tracker_model.`): renamed here, so loading reports no missing and no unexpected key.

- `tiny`: small dimensions at 224 px for tests (8 M parameters, built in a second).
- `full`: the default `Sam3VideoConfig`, the real architecture (ViT-H-like backbone at 1008 px, ~850 M), for
  benchmarks.

The tokenizer is CLIP's byte-level BPE with no merges (each byte is a token): real prompts tokenize, just
into more tokens than the real vocabulary gives, and all ids stay below the text model's vocabulary size.
"""

from __future__ import annotations

from pathlib import Path

import torch

SAM3_DIR = "sam3"
_TINY_SIDE, _PATCH = 224, 14


def _tiny_config():
    from transformers import Sam3VideoConfig

    width, grid = 32, _TINY_SIDE // _PATCH
    vision = {
        "backbone_config": {
            "model_type": "sam3_vit_model", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": _TINY_SIDE, "patch_size": _PATCH, "window_size": 8,
            "global_attn_indexes": [1], "pretrain_image_size": _TINY_SIDE,
        },
        "fpn_hidden_size": width,
        "backbone_feature_sizes": [[grid * 4, grid * 4], [grid * 2, grid * 2], [grid, grid]],
    }
    text = {
        "vocab_size": 520, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "max_position_embeddings": 32, "projection_dim": 32,
        "bos_token_id": 512, "eos_token_id": 513, "pad_token_id": 513,
    }
    small = {"hidden_size": width, "num_attention_heads": 2, "intermediate_size": 64}
    detector = {
        "vision_config": vision, "text_config": text,
        "geometry_encoder_config": {**small, "num_layers": 1},
        "detr_encoder_config": {**small, "num_layers": 1},
        "detr_decoder_config": {**small, "num_layers": 2, "num_queries": 20},
        "mask_decoder_config": {"hidden_size": width, "num_attention_heads": 2},
    }
    tracker = {
        "image_size": _TINY_SIDE,  # its setter sizes the tracker's vision and prompt encoders (else 1008)
        "vision_config": vision,
        "prompt_encoder_config": {"hidden_size": width, "image_size": _TINY_SIDE, "patch_size": _PATCH},
        "mask_decoder_config": {"hidden_size": width, "mlp_dim": 64, "num_attention_heads": 2,
                                "iou_head_hidden_dim": width},
    }
    return Sam3VideoConfig(detector_config=detector, tracker_config=tracker)


def _byte_level_tokenizer():
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: i for i, symbol in enumerate(symbols)}
    vocab.update({symbol + "</w>": len(symbols) + i for i, symbol in enumerate(symbols)})
    vocab.update({"<|startoftext|>": 2 * len(symbols), "<|endoftext|>": 2 * len(symbols) + 1})
    return CLIPTokenizer(vocab=vocab, merges=[])


def write_sam3(folder: Path, variant: str, seed: int) -> Path:
    """Save a random SAM 3 (weights, config, processor, tokenizer) in the Hub repository's layout."""
    from safetensors.torch import load_file, save_file
    from transformers import Sam3ImageProcessor, Sam3Processor, Sam3VideoConfig, Sam3VideoModel

    folder.mkdir(parents=True, exist_ok=True)
    config = _tiny_config() if variant == "tiny" else Sam3VideoConfig()
    torch.manual_seed(seed)
    Sam3VideoModel(config).eval().save_pretrained(folder)
    weights = folder / "model.safetensors"
    state = {key.replace("tracker_model.tracker_model.", "tracker_model.", 1): value
             for key, value in load_file(weights).items()}
    save_file(state, weights, metadata={"format": "pt"})
    side = config.detector_config.vision_config.backbone_config.image_size
    image_processor = Sam3ImageProcessor(size={"height": side, "width": side})
    Sam3Processor(image_processor=image_processor, tokenizer=_byte_level_tokenizer()).save_pretrained(folder)
    for written in folder.iterdir():  # transformers writes the weights 0600: readable by a server user too
        written.chmod(0o644)
    return folder
