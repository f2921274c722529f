"""SAM2 image segmentation: encode an image once, then decode any number of prompts against it.

The image embedding is a value (`ImageEmbedding`) rather than state hidden in a predictor, so a caller
can cache it and reuse it across requests, and several boxes decode together on one encoding. The
numerics follow sam2's `SAM2ImagePredictor` (the parity tests hold us to it); sam2's own transforms and
model modules do the work, except the masks' upsampling to image size on the CPU (mask_upscaling.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from segserve.contract.errors import InvalidRequest, WeightsError
from segserve.media.masks import mask_bbox
from segserve.models.mask_upscaling import upscale_masks
from segserve.models.runtime import Runtime, StageTimer
from segserve.weights.bundle import WeightsBundle

# A chunk of boxes costs the decoder ~28 MiB each (measured), and upsampling their masks to image size
# chunk×H×W float32 values more: keep the latter under ~256 MB, which only bites above ~4 megapixels.
_UPSAMPLE_VALUE_BUDGET = 64 * 1024 * 1024
# A binary mask fed back as a prompt becomes confident logits of this magnitude.
_MASK_LOGIT = 10.0
LOW_RES_SIZE = 256

log = logging.getLogger(__name__)


def logits_from_mask(mask: np.ndarray, side: int = LOW_RES_SIZE) -> np.ndarray:
    """A full-size bool mask → the (1, side, side) low-res logits SAM2 (and SAM 3's tracker) take as a mask prompt.

    Both resize the image to a square without padding, so the low-res frame is the whole image stretched.
    """
    import cv2

    small = cv2.resize(mask.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)
    return ((small * 2.0 - 1.0) * _MASK_LOGIT)[None]


@dataclass(frozen=True, eq=False)
class ImageEmbedding:
    """The image encoder's output for one image: what every prompt decodes against."""

    image_embed: torch.Tensor  # (1, C, S, S), S = image_size / 16
    high_res_feats: tuple[torch.Tensor, ...]  # (1, C', 4S, 4S), (1, C'', 2S, 2S)
    image_size: tuple[int, int]  # original (height, width)

    @property
    def nbytes(self) -> int:
        tensors = (self.image_embed, *self.high_res_feats)
        return sum(t.element_size() * t.nelement() for t in tensors)


@dataclass(frozen=True, eq=False)
class Sam2Prompt:
    """Prompts for one object, in image pixels: points (x, y) with labels (1 positive, 0 negative),
    an optional box (x0, y0, x1, y1) and optional low-res mask logits (1, 256, 256) from an earlier result."""

    points: np.ndarray | None = None  # (N, 2) float
    labels: np.ndarray | None = None  # (N,) int
    box: np.ndarray | None = None  # (4,) float
    mask_logits: np.ndarray | None = None  # (1, 256, 256) float

    def __post_init__(self) -> None:
        if self.points is None and self.box is None and self.mask_logits is None:
            raise InvalidRequest("a SAM2 prompt needs points, a box or a previous mask", field="points")
        if (self.points is None) != (self.labels is None):
            raise InvalidRequest("points and labels go together", field="labels")
        if self.points is not None and (self.points.ndim != 2 or self.points.shape[1] != 2):
            raise InvalidRequest("points must be a list of [x, y] pairs", field="points")
        if self.labels is not None and self.labels.shape != (len(self.points),):
            raise InvalidRequest("labels must have one entry per point", field="labels")
        if self.box is not None and self.box.shape != (4,):
            raise InvalidRequest("box must be [x0, y0, x1, y1]", field="box")


@dataclass(frozen=True, eq=False)
class MaskPrediction:
    """C masks at image size with the model's quality score each, ordered as the model returns them."""

    masks: np.ndarray  # (C, H, W) bool
    scores: np.ndarray  # (C,) float32, predicted IoU
    low_res_logits: np.ndarray  # (C, 256, 256) float32, clamped to [-32, 32]: feed back as mask_logits

    @property
    def boxes(self) -> list[tuple[int, int, int, int] | None]:
        """Each mask's bounding box, xyxy in pixel edges; None for an empty mask."""
        return [mask_bbox(mask) for mask in self.masks]


class Sam2Pipeline:
    def __init__(self, model: torch.nn.Module, runtime: Runtime, mask_threshold: float = 0.0):
        from sam2.utils.transforms import SAM2Transforms

        self.model = model
        self.runtime = runtime
        self.mask_threshold = mask_threshold
        self._transforms = SAM2Transforms(resolution=model.image_size, mask_threshold=mask_threshold)
        size = model.image_size
        self._feature_sizes = [(size // 4, size // 4), (size // 8, size // 8), (size // 16, size // 16)]

    @classmethod
    def from_checkpoint(
        cls, checkpoint: Path, config: str, runtime: Runtime | None = None, compile_encoder: bool = False
    ) -> "Sam2Pipeline":
        """Load Meta's SAM2.1 checkpoint (`{"model": state_dict}`) with the matching sam2 config name;
        `compile_encoder` compiles the image encoder on CUDA (on the CPU it is not applied)."""
        from sam2.build_sam import build_sam2

        runtime = runtime or Runtime.select()
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise WeightsError(f"SAM2 checkpoint not found: {checkpoint}")
        try:
            model = build_sam2(config, str(checkpoint), device=str(runtime.device))
        except Exception as exc:  # torch.load / load_state_dict raise many types; all mean "bad file"
            raise WeightsError(f"cannot load SAM2 checkpoint {checkpoint} with {config}: {exc}") from exc
        if compile_encoder and runtime.device.type == "cuda":
            # As SAM2Base(compile_image_encoder=True) does: the forward, so checkpoints still load; fixed
            # shapes (every image is resized to 1024x1024). The warm-up pays the compile at worker start.
            model.image_encoder.forward = torch.compile(
                model.image_encoder.forward, mode="max-autotune", fullgraph=True, dynamic=False
            )
        elif compile_encoder:
            log.info("compile: true applies on CUDA only; the SAM2 image encoder runs eagerly on %s", runtime.device)
        return cls(model, runtime)

    @classmethod
    def from_bundle(cls, bundle: WeightsBundle, runtime: Runtime | None = None,
                    compile_encoder: bool = False) -> "Sam2Pipeline":
        if bundle.sam2_checkpoint is None:
            raise WeightsError("this weights bundle has no SAM2 checkpoint (a GroundingDINO-only bundle)")
        return cls.from_checkpoint(bundle.sam2_checkpoint, bundle.sam2_config, runtime, compile_encoder)

    def encode(self, image: np.ndarray, timer: StageTimer | None = None) -> ImageEmbedding:
        """Run the image encoder on an RGB uint8 (H, W, 3) image."""
        timer = timer or StageTimer(self.runtime)
        with timer.stage("sam2_image_encoder"), self.runtime.model_call():
            pixels = self._transforms(image)[None].to(self.runtime.device)
            backbone_out = self.model.forward_image(pixels)
            _, vision_feats, _, _ = self.model._prepare_backbone_features(backbone_out)
            if self.model.directly_add_no_mem_embed:
                vision_feats[-1] = vision_feats[-1] + self.model.no_mem_embed
            feats = [
                feat.permute(1, 2, 0).reshape(1, -1, *size)
                for feat, size in zip(vision_feats, self._feature_sizes)
            ]
        return ImageEmbedding(feats[-1], tuple(feats[:-1]), (int(image.shape[0]), int(image.shape[1])))

    def predict(
        self, embedding: ImageEmbedding, prompt: Sam2Prompt, multimask: bool = True, timer: StageTimer | None = None
    ) -> MaskPrediction:
        """Masks for one object: 3 candidates with `multimask`, else 1."""
        timer = timer or StageTimer(self.runtime)
        with timer.stage("sam2_mask_decoder"), self.runtime.model_call():
            coords, labels = self._box_points(embedding, prompt.box[None] if prompt.box is not None else None)
            if prompt.points is not None:
                point_coords = self._to_model_coords(embedding, prompt.points)[None]
                point_labels = torch.as_tensor(prompt.labels, dtype=torch.int, device=self.runtime.device)[None]
                coords = point_coords if coords is None else torch.cat([coords, point_coords], dim=1)
                labels = point_labels if labels is None else torch.cat([labels, point_labels], dim=1)
            mask_input = None
            if prompt.mask_logits is not None:
                mask_input = torch.as_tensor(prompt.mask_logits, dtype=torch.float, device=self.runtime.device)
                mask_input = mask_input.reshape(1, 1, *mask_input.shape[-2:])
            return self._decode(embedding, coords, labels, mask_input, multimask)

    def predict_boxes(
        self, embedding: ImageEmbedding, boxes: np.ndarray, timer: StageTimer | None = None
    ) -> MaskPrediction:
        """One mask per box (N, 4), decoded in chunks so that no number of boxes exhausts memory."""
        timer = timer or StageTimer(self.runtime)
        h, w = embedding.image_size
        chunk = max(1, min(self.runtime.box_batch, _UPSAMPLE_VALUE_BUDGET // (h * w)))
        parts = []
        with timer.stage("sam2_mask_decoder"), self.runtime.model_call():
            for start in range(0, len(boxes), chunk):
                coords, labels = self._box_points(embedding, boxes[start : start + chunk])
                parts.append(self._decode(embedding, coords, labels, None, multimask=False))
        if not parts:
            return MaskPrediction(
                np.zeros((0, h, w), bool), np.zeros((0,), np.float32), np.zeros((0, 256, 256), np.float32)
            )
        return MaskPrediction(
            # along the masks' own memory order: column-major masks stay column-major (see mask_upscaling)
            np.concatenate([p.masks.transpose(0, 2, 1) for p in parts]).transpose(0, 2, 1),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.low_res_logits for p in parts]),
        )

    def _to_model_coords(self, embedding: ImageEmbedding, xy: np.ndarray) -> torch.Tensor:
        coords = torch.as_tensor(xy, dtype=torch.float, device=self.runtime.device)
        return self._transforms.transform_coords(coords, normalize=True, orig_hw=embedding.image_size)

    def _box_points(self, embedding: ImageEmbedding, boxes: np.ndarray | None):
        """Boxes as SAM2 takes them: two corner points labelled 2 (top-left) and 3 (bottom-right)."""
        if boxes is None:
            return None, None
        coords = self._to_model_coords(embedding, np.asarray(boxes, dtype=np.float32).reshape(-1, 2, 2))
        labels = torch.tensor([[2, 3]], dtype=torch.int, device=self.runtime.device).repeat(len(coords), 1)
        return coords, labels

    def _decode(self, embedding, coords, labels, mask_input, multimask: bool) -> MaskPrediction:
        points = (coords, labels) if coords is not None else None
        sparse, dense = self.model.sam_prompt_encoder(points=points, boxes=None, masks=mask_input)
        low_res, iou, _, _ = self.model.sam_mask_decoder(
            image_embeddings=embedding.image_embed,
            image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=points is not None and coords.shape[0] > 1,
            high_res_features=list(embedding.high_res_feats),
        )
        # One object per row: (B, C, ...) → (B*C, ...); B is 1 for point prompts, C is 1 for boxes.
        return MaskPrediction(
            upscale_masks(low_res, embedding.image_size, self.mask_threshold),
            iou.flatten().float().cpu().numpy(),
            torch.clamp(low_res, -32.0, 32.0).flatten(0, 1).float().cpu().numpy(),
        )
