"""Weight files round-trip through the production loaders; broken ones give clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from segserve.contract.errors import WeightsError
from segserve.models.grounding_dino import GroundingDinoDetector
from segserve.models.runtime import Runtime
from segserve.models.sam2_pipeline import Sam2Pipeline
from segserve.weights.bundle import WeightsBundle, sam2_config_for
from segserve.weights.random_models import write_grounding_dino

CPU = Runtime.select("cpu")


def test_the_checkpoint_is_in_metas_format(tiny_bundle):
    checkpoint = torch.load(tiny_bundle.sam2_checkpoint, map_location="cpu", weights_only=True)
    assert list(checkpoint) == ["model"]
    assert "image_encoder.trunk.patch_embed.proj.weight" in checkpoint["model"]
    assert tiny_bundle.sam2_config == "configs/sam2.1/sam2.1_hiera_t.yaml"


def test_the_loaded_model_holds_the_saved_weights(tiny_bundle, sam2_pipeline):
    saved = torch.load(tiny_bundle.sam2_checkpoint, map_location="cpu", weights_only=True)["model"]
    loaded = sam2_pipeline.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in list(saved)[::50])


def test_the_grounding_dino_folder_is_a_save_pretrained_folder(tiny_bundle):
    files = {p.name for p in tiny_bundle.grounding_dino_dir.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"} <= files
    config = json.loads((tiny_bundle.grounding_dino_dir / "config.json").read_text())
    assert config["model_type"] == "grounding-dino"


def test_the_tokenizer_knows_the_prompt_words(detector):
    ids = detector.processor.tokenizer("black jeans.")["input_ids"]
    assert detector.processor.tokenizer.unk_token_id not in ids


def test_manifest_round_trip(tiny_bundle, tmp_path):
    tiny_bundle.write(tmp_path)  # files outside the folder are stored as absolute paths
    assert WeightsBundle.load(tmp_path) == tiny_bundle


def test_random_weights_are_deterministic_by_seed(tmp_path):
    def weights(seed, name):
        folder = write_grounding_dino(tmp_path / name, "tiny", seed)
        from safetensors.torch import load_file

        return load_file(folder / "model.safetensors")

    first, again, other = weights(7, "a"), weights(7, "b"), weights(8, "c")
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_a_missing_manifest_says_how_to_make_one(tmp_path):
    with pytest.raises(WeightsError, match="segserve-weights prepare"):
        WeightsBundle.load(tmp_path)


def test_a_manifest_naming_missing_files_is_refused(tiny_bundle, tmp_path):
    WeightsBundle("tiny", tmp_path / "sam2.1_hiera_tiny.pt", tiny_bundle.sam2_config, tmp_path / "gd").write(tmp_path)
    with pytest.raises(WeightsError, match="does not exist"):
        WeightsBundle.load(tmp_path)


def test_an_unknown_checkpoint_name_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="keep Meta's file name"):
        sam2_config_for(tmp_path / "my_model.pt")


def test_a_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        Sam2Pipeline.from_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt", "configs/sam2.1/sam2.1_hiera_t.yaml", CPU)


def test_a_truncated_checkpoint_is_a_clear_error(tiny_bundle, tmp_path):
    broken = tmp_path / "sam2.1_hiera_tiny.pt"
    broken.write_bytes(tiny_bundle.sam2_checkpoint.read_bytes()[: 1 << 20])
    with pytest.raises(WeightsError, match="cannot load SAM2 checkpoint"):
        Sam2Pipeline.from_checkpoint(broken, tiny_bundle.sam2_config, CPU)


def test_a_checkpoint_of_another_size_is_refused(tiny_bundle, tmp_path):
    """Meta's loader is strict: the tiny weights do not fit the small config."""
    with pytest.raises(WeightsError, match="sam2.1_hiera_s.yaml"):
        Sam2Pipeline.from_checkpoint(tiny_bundle.sam2_checkpoint, "configs/sam2.1/sam2.1_hiera_s.yaml", CPU)


def test_a_grounding_dino_folder_without_config_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="no config.json"):
        GroundingDinoDetector.from_pretrained(tmp_path, CPU)


def test_corrupt_grounding_dino_weights_are_a_clear_error(tiny_bundle, tmp_path):
    folder = tmp_path / "gd"
    shutil.copytree(tiny_bundle.grounding_dino_dir, folder)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="cannot load GroundingDINO"):
        GroundingDinoDetector.from_pretrained(folder, CPU)
