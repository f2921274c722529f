"""SAM 3: encode an image once; find every instance of phrases / exemplar boxes on it, or segment a click.

One vision backbone feeds both halves of SAM 3, as in transformers' `Sam3VideoModel`: the detector's neck
(concept mode, `Sam3Model`) and the tracker's neck (clicks, `Sam3TrackerModel`). `encode` runs the backbone
once and both necks, so a phrase after a click, or a click on a detection, never pays the encoder again.
Text features are kept per phrase (a small LRU), so a phrase used again skips the text encoder.

The numerics are transformers' own: its processors turn pixels and prompts into model inputs, the models'
forwards take the cached features (`vision_embeds=`, `text_embeds=`, `image_embeddings=`), and the
results follow `Sam3Processor.post_process_instance_segmentation` and `Sam3TrackerProcessor.post_process_masks`
(the parity tests hold us to them). One difference, on purpose: detections are cut to the top
`max_detections` by score before their masks are upsampled, and in chunks, so that 200 detections on a
12 MP image do not need 200 full-size float masks at once (lang-sam #93).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from segserve.contract.errors import WeightsError
from segserve.lru import Lru
from segserve.models.runtime import Runtime, StageTimer
from segserve.models.sam2_pipeline import MaskPrediction, Sam2Prompt, logits_from_mask

# Upsampling masks to image size costs chunk×H×W float32 values: keep that under ~256 MB.
_UPSAMPLE_VALUE_BUDGET = 64 * 1024 * 1024
TEXT_CACHE_ENTRIES = 256
EXEMPLAR_ONLY_TEXT = "visual"  # what Sam3Processor sends when a prompt has exemplar boxes and no text


@dataclass(frozen=True, eq=False)
class Sam3Encoding:
    """One image's features for both halves of SAM 3 (position encodings are shared between images)."""

    detector: object  # transformers' Sam3VisionEncoderOutput: the detector neck's feature pyramid
    tracker: tuple[torch.Tensor, ...]  # the tracker's image embeddings, as Sam3TrackerModel computes them
    image_size: tuple[int, int]  # original (height, width)

    @property
    def nbytes(self) -> int:
        tensors = (*self.detector.fpn_hidden_states, *self.tracker)
        return sum(t.element_size() * t.nelement() for t in tensors)


@dataclass(frozen=True, eq=False)
class Detections:
    """Instances best first: scores, xyxy boxes in image pixels, bool masks at image size, phrase index."""

    scores: np.ndarray  # (N,) float32
    boxes: np.ndarray  # (N, 4) float32
    masks: np.ndarray  # (N, H, W) bool
    phrase_index: np.ndarray  # (N,) int: which of the phrases asked for found it


class Sam3Pipeline:
    def __init__(self, detector, tracker, processor, tracker_processor, runtime: Runtime,
                 text_cache_entries: int = TEXT_CACHE_ENTRIES):
        self.detector = detector
        self.tracker = tracker
        self.processor = processor
        self.tracker_processor = tracker_processor
        self.runtime = runtime
        self.text_features: Lru[str, tuple[torch.Tensor, torch.Tensor]] = Lru(text_cache_entries)  # per phrase
        self._positions: dict[tuple, tuple] = {}  # feature shape → its position encoding, the same for every image
        backbone = detector.config.vision_config.backbone_config
        self.grid_side = backbone.image_size // backbone.patch_size  # the backbone's feature grid (72 at 1008 px)
        self.backbone_width = backbone.hidden_size
        self.mask_input_size = 4 * self.grid_side  # the tracker's prompt encoder takes masks at 4× that grid

    @classmethod
    def from_folder(cls, folder: Path, runtime: Runtime | None = None) -> "Sam3Pipeline":
        """Load SAM 3 from a folder in its Hugging Face repository's layout (weights/<set>/sam3)."""
        from transformers import Sam3Model, Sam3Processor, Sam3TrackerModel, Sam3TrackerProcessor

        runtime = runtime or Runtime.select()
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise WeightsError(f"{folder} is not a SAM 3 folder: it has no config.json")
        try:
            detector = Sam3Model.from_pretrained(folder, local_files_only=True)
            tracker = Sam3TrackerModel.from_pretrained(folder, local_files_only=True)
            processor = Sam3Processor.from_pretrained(folder, local_files_only=True)
            tracker_processor = Sam3TrackerProcessor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise WeightsError(f"cannot load SAM 3 from {folder}: {exc}") from exc
        _share_backbone(detector, tracker)
        return cls(detector.to(runtime.device).eval(), tracker.to(runtime.device).eval(), processor,
                   tracker_processor, runtime)

    def encode(self, image: np.ndarray, timer: StageTimer | None = None) -> Sam3Encoding:
        """The backbone once, then the detector's and the tracker's necks, on an RGB uint8 (H, W, 3) image."""
        timer = timer or StageTimer(self.runtime)
        with timer.stage("sam3_vision_encoder"), self.runtime.model_call():
            pixels = self.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(self.runtime.device)
            hidden = self.detector.vision_encoder.backbone(pixels).last_hidden_state
            patch = self.detector.config.vision_config.backbone_config.patch_size
            grid = (pixels.shape[-2] // patch, pixels.shape[-1] // patch)
            encoding = self.from_backbone(hidden.view(1, *grid, -1).permute(0, 3, 1, 2), image.shape[:2])
        return encoding

    def from_backbone(self, spatial: torch.Tensor, image_size: tuple[int, int]) -> Sam3Encoding:
        """Both necks on the backbone's (1, C, S, S) features: the encoding without the backbone's cost."""
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        pyramid, positions = self.detector.vision_encoder.neck(spatial)
        detector = Sam3VisionEncoderOutput(fpn_hidden_states=pyramid,
                                           fpn_position_encoding=self._shared_positions(positions))
        tracker = self._tracker_embeddings(self.tracker.vision_encoder.neck(spatial)[0])
        return Sam3Encoding(detector, tracker, (int(image_size[0]), int(image_size[1])))

    def _shared_positions(self, positions: tuple) -> tuple:
        key = tuple(tuple(p.shape) for p in positions)
        return self._positions.setdefault(key, positions)

    def _tracker_embeddings(self, pyramid: tuple) -> tuple[torch.Tensor, ...]:
        """Sam3TrackerModel.get_image_embeddings after its vision encoder, step by step."""
        tracker = self.tracker
        maps = list(pyramid)
        maps[0] = tracker.mask_decoder.conv_s0(maps[0])
        maps[1] = tracker.mask_decoder.conv_s1(maps[1])
        flat = [feature.flatten(2).permute(2, 0, 1) for feature in maps]
        flat[-1] = flat[-1] + tracker.no_memory_embedding
        return tuple(f.permute(1, 2, 0).view(1, -1, *size) for f, size in zip(flat, tracker.backbone_feature_sizes))

    def detect(
        self, encoding: Sam3Encoding, phrases: list[str], exemplars: tuple[list, list] | None = None,
        score_threshold: float = 0.5, mask_threshold: float = 0.5, max_detections: int = 50,
        timer: StageTimer | None = None,
    ) -> Detections:
        """Every instance of each phrase (and of the exemplar boxes, pixel xyxy with labels 1/0) on one encoding.

        The phrases run as one batch; the instances of all of them are merged and the best `max_detections` kept.
        """
        timer = timer or StageTimer(self.runtime)
        phrases = phrases or [EXEMPLAR_ONLY_TEXT]
        with timer.stage("sam3_text_encoder"), self.runtime.model_call():
            text, text_mask = self._text(phrases)
        with timer.stage("sam3_detector"), self.runtime.model_call():
            batch = len(phrases)
            vision = encoding.detector
            expanded = type(vision)(
                fpn_hidden_states=tuple(f.expand(batch, *f.shape[1:]) for f in vision.fpn_hidden_states),
                fpn_position_encoding=tuple(p.expand(batch, *p.shape[1:]) for p in vision.fpn_position_encoding),
            )
            boxes = self._exemplar_inputs(encoding, exemplars, batch)
            outputs = self.detector(vision_embeds=expanded, text_embeds=_TextEmbeds(text), attention_mask=text_mask,
                                    **boxes)
            scores = outputs.pred_logits.sigmoid()
            if outputs.presence_logits is not None:
                scores = scores * outputs.presence_logits.sigmoid()
            keep = scores > score_threshold  # (P, Q)
            phrase_index, query = keep.nonzero(as_tuple=True)
            kept = scores[phrase_index, query]
            order = torch.argsort(kept, descending=True, stable=True)[:max_detections]
            phrase_index, query, kept = phrase_index[order], query[order], kept[order]
            h, w = encoding.image_size
            scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=kept.device)
            found_boxes = outputs.pred_boxes[phrase_index, query].float() * scale
            logits = outputs.pred_masks[phrase_index, query]
        with timer.stage("sam3_masks"), self.runtime.model_call():
            masks = _upsample(logits, (h, w), mask_threshold)
        return Detections(kept.float().cpu().numpy(), found_boxes.cpu().numpy(), masks,
                          phrase_index.cpu().numpy())

    def _text(self, phrases: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The text encoder's features for each phrase (from the cache when it has them), stacked."""
        features, masks = [], []
        for phrase in phrases:
            entry = self.text_features.get(phrase)
            if entry is None:
                tokens = self.processor.tokenizer(phrase, return_tensors="pt", padding="max_length", max_length=32)
                tokens = tokens.to(self.runtime.device)
                encoded = self.detector.get_text_features(tokens["input_ids"], tokens["attention_mask"])
                entry = (encoded.pooler_output, tokens["attention_mask"])
                self.text_features.put(phrase, entry)
            features.append(entry[0])
            masks.append(entry[1])
        return torch.cat(features), torch.cat(masks)

    def _exemplar_inputs(self, encoding: Sam3Encoding, exemplars, batch: int) -> dict:
        if exemplars is None:
            return {}
        boxes, labels = exemplars
        inputs = self.processor(input_boxes=[boxes], input_boxes_labels=[labels],
                                original_sizes=[list(encoding.image_size)], return_tensors="pt")
        device = self.runtime.device
        return {"input_boxes": inputs["input_boxes"].to(device).expand(batch, -1, -1),
                "input_boxes_labels": inputs["input_boxes_labels"].to(device).expand(batch, -1)}

    def click(self, encoding: Sam3Encoding, prompt: Sam2Prompt, multimask: bool = True,
              timer: StageTimer | None = None) -> MaskPrediction:
        """One object's masks from points / a box / an earlier mask, answered by SAM 3's tracker."""
        timer = timer or StageTimer(self.runtime)
        with timer.stage("sam3_tracker"), self.runtime.model_call():
            kwargs = {"original_sizes": [list(encoding.image_size)], "return_tensors": "pt"}
            if prompt.points is not None:
                kwargs["input_points"] = [[prompt.points.tolist()]]
                kwargs["input_labels"] = [[prompt.labels.tolist()]]
            if prompt.box is not None:
                kwargs["input_boxes"] = [[prompt.box.tolist()]]
            inputs = self.tracker_processor(**kwargs)
            device = self.runtime.device
            model_inputs = {k: inputs[k].to(device) for k in ("input_points", "input_labels", "input_boxes")
                            if k in inputs}
            if prompt.mask_logits is not None:
                model_inputs["input_masks"] = torch.as_tensor(prompt.mask_logits, device=device)[None]
            out = self.tracker(image_embeddings=list(encoding.tracker), multimask_output=multimask, **model_inputs)
            masks = self.tracker_processor.post_process_masks(out.pred_masks.float(), inputs["original_sizes"])[0]
        return MaskPrediction(
            masks[0].cpu().numpy().astype(bool),
            out.iou_scores[0, 0].float().cpu().numpy(),
            out.pred_masks[0, 0].float().clamp(-32.0, 32.0).cpu().numpy(),
        )

    def mask_logits(self, mask: np.ndarray) -> np.ndarray:
        """A full-size bool mask → the (1, S, S) logits the tracker takes as a mask prompt."""
        return logits_from_mask(mask, self.mask_input_size)


class _TextEmbeds:
    """What Sam3Model's forward reads of `text_embeds`: the projected text features."""

    def __init__(self, pooler_output: torch.Tensor):
        self.pooler_output = pooler_output


def _upsample(logits: torch.Tensor, size: tuple[int, int], mask_threshold: float) -> np.ndarray:
    """Mask logits (N, h, w) → bool masks (N, H, W): sigmoid, bilinear to image size, threshold, in chunks, on
    the logits' device. Each mask comes out column-major (transposed there), the order COCO RLE runs in."""
    h, w = size
    out = np.zeros((len(logits), w, h), bool)
    chunk = max(1, _UPSAMPLE_VALUE_BUDGET // (h * w))
    for start in range(0, len(logits), chunk):
        part = logits[start : start + chunk].float().sigmoid()[None]
        resized = torch.nn.functional.interpolate(part, size=size, mode="bilinear", align_corners=False)[0]
        out[start : start + chunk] = (resized > mask_threshold).transpose(1, 2).cpu().numpy()
    return out.transpose(0, 2, 1)


def _share_backbone(detector, tracker) -> None:
    """One backbone in memory: the tracker's is the detector's (the Hub checkpoint stores it once)."""
    ours, theirs = detector.vision_encoder.backbone.state_dict(), tracker.vision_encoder.backbone.state_dict()
    if ours.keys() != theirs.keys() or any(not torch.equal(ours[k], theirs[k]) for k in ours):
        raise WeightsError("this SAM 3 folder's tracker and detector have different vision backbones; "
                           "segserve serves the checkpoint layout of facebook/sam3, where they are one")
    tracker.vision_encoder.backbone = detector.vision_encoder.backbone
