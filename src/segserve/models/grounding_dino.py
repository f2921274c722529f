"""Open-vocabulary box detection with GroundingDINO (transformers), as the Lang-SAM algorithm uses it.

Post-processing is done here rather than by `post_process_grounded_object_detection` so that the
detections are capped (top-k by score) BEFORE any per-box work: with untrained or over-eager weights
hundreds of GroundingDINO's 900 queries pass the threshold. The boxes are the same as transformers'
own post-processing (the parity tests hold us to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from segserve.contract.errors import InvalidRequest, WeightsError
from segserve.contract.requests import DetectionParams
from segserve.models.runtime import Runtime, StageTimer
from segserve.weights.bundle import WeightsBundle


@dataclass(frozen=True)
class Detection:
    label: str  # the prompt words the box matched ("" when no token passed text_threshold)
    box: tuple[float, float, float, float]  # xyxy in image pixels, clipped to the image
    score: float


def normalize_prompt(text: str) -> str:
    """GroundingDINO's expected form: lower case, one phrase per '.', each '.'-terminated.

    "Black Jeans. a Dog" → "black jeans. a dog."
    """
    phrases = [" ".join(p.split()) for p in text.lower().split(".")]
    phrases = [p for p in phrases if p]
    if not phrases:
        raise InvalidRequest("text_prompt has no words", field="text_prompt")
    return " ".join(p + "." for p in phrases)


class GroundingDinoDetector:
    def __init__(self, model: torch.nn.Module, processor, runtime: Runtime):
        self.model = model
        self.processor = processor
        self.runtime = runtime

    @classmethod
    def from_pretrained(cls, folder: Path, runtime: Runtime | None = None) -> "GroundingDinoDetector":
        """Load a transformers `save_pretrained` folder (model + processor + tokenizer), offline."""
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        runtime = runtime or Runtime.select()
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise WeightsError(f"GroundingDINO folder {folder} has no config.json")
        try:
            processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
            model = AutoModelForZeroShotObjectDetection.from_pretrained(folder, local_files_only=True)
        except Exception as exc:  # transformers raises OSError/ValueError/safetensors errors for bad folders
            raise WeightsError(f"cannot load GroundingDINO from {folder}: {exc}") from exc
        return cls(model.to(runtime.device).eval(), processor, runtime)

    @classmethod
    def from_bundle(cls, bundle: WeightsBundle, runtime: Runtime | None = None) -> "GroundingDinoDetector":
        if bundle.grounding_dino_dir is None:
            raise WeightsError("this weights bundle has no GroundingDINO model (a SAM2-only bundle)")
        return cls.from_pretrained(bundle.grounding_dino_dir, runtime)

    def prompt_problem(self, text_prompt: str) -> str | None:
        """Why this model cannot take the prompt as it is (too long, words outside its vocabulary), or None."""
        tokenizer = self.processor.tokenizer
        token_ids = tokenizer(normalize_prompt(text_prompt))["input_ids"]
        if len(token_ids) > self.model.config.max_text_len:
            return f"longer than {self.model.config.max_text_len} tokens"
        if tokenizer.unk_token_id in token_ids:
            return "words outside the detector's vocabulary"
        return None

    def detect(
        self,
        image: np.ndarray,
        text_prompt: str,
        params: DetectionParams = DetectionParams(),
        timer: StageTimer | None = None,
    ) -> list[Detection]:
        """Boxes for the prompt's phrases in an RGB uint8 image, best first, at most `params.max_detections`."""
        timer = timer or StageTimer(self.runtime)
        text = normalize_prompt(text_prompt)
        # HWC always: for an image 1 or 3 pixels high the processor would guess channels-first and fail.
        inputs = self.processor(images=image, text=text, return_tensors="pt", input_data_format="channels_last")
        max_tokens = self.model.config.max_text_len
        if inputs["input_ids"].shape[1] > max_tokens:
            raise InvalidRequest(f"text_prompt is longer than {max_tokens} tokens", field="text_prompt")
        with timer.stage("grounding_dino"), self.runtime.model_call():
            outputs = self.model(**inputs.to(self.runtime.device))
        probs = torch.sigmoid(outputs.logits[0].float())  # (queries, text tokens)
        scores = probs.max(dim=-1).values
        kept = torch.nonzero(scores > params.box_threshold).flatten()
        kept = kept[torch.argsort(scores[kept], descending=True, stable=True)][:params.max_detections]
        boxes = self._to_pixels(outputs.pred_boxes[0][kept].float(), image.shape[:2])
        labels = self._labels(probs[kept] > params.text_threshold, inputs["input_ids"][0])
        return [
            Detection(label, tuple(float(v) for v in box), float(score))
            for label, box, score in zip(labels, boxes.tolist(), scores[kept].tolist())
        ]

    @staticmethod
    def _to_pixels(center_boxes: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        """(cx, cy, w, h) relative → (x0, y0, x1, y1) pixels, clipped to the image."""
        from transformers.image_transforms import center_to_corners_format

        h, w = image_hw
        boxes = center_to_corners_format(center_boxes.cpu()) * torch.tensor([w, h, w, h], dtype=torch.float32)
        return torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                            boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1)

    def _labels(self, token_hits: torch.Tensor, input_ids: torch.Tensor) -> list[str]:
        """The phrase of each box: its prompt tokens above text_threshold, as transformers extracts them."""
        from transformers.models.grounding_dino.processing_grounding_dino import get_phrases_from_posmap

        if len(token_hits) == 0:
            return []
        token_ids = get_phrases_from_posmap(token_hits.cpu(), input_ids.cpu())
        labels = self.processor.batch_decode(token_ids, skip_special_tokens=True)
        return [label.strip(" .") for label in labels]
