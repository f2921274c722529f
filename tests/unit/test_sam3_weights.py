"""SAM 3's weights: the gated Hub download (up to the network: huggingface_hub's calls are faked here), its
checks and pins, and `segserve-weights prepare` with and without access. No test reaches huggingface.co."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub.errors import GatedRepoError

from segserve.contract.errors import WeightsError
from segserve.weights import cli, sam3_download
from segserve.weights.bundle import WeightsBundle
from segserve.weights.download import sha256_of
from segserve.weights.sam3_download import check_sam3_dir, fetch_sam3


class FakeHub:
    """The Hub as huggingface_hub's HfApi/snapshot_download see it, serving the tiny bundle's SAM 3 folder."""

    def __init__(self, folder, sha256=None, gated=False):
        self.folder, self.gated = folder, gated
        self.sha256 = sha256 or sha256_of(folder / "model.safetensors")
        self.calls = []

    def install(self, monkeypatch):
        hub = self

        class Api:
            def __init__(self, token=None):
                hub.calls.append(("token", token))

            def model_info(self, repo):
                hub.calls.append(("model_info", repo))
                return SimpleNamespace(sha="c0ffee")

            def get_paths_info(self, repo, paths, revision, expand):
                hub.calls.append(("paths_info", repo, revision))
                if hub.gated:
                    error = GatedRepoError.__new__(GatedRepoError)
                    Exception.__init__(error, "401 Client Error: access to this model is restricted")
                    raise error
                return [SimpleNamespace(lfs=SimpleNamespace(sha256=hub.sha256))]

        def snapshot_download(repo, revision, local_dir, allow_patterns, token):
            hub.calls.append(("snapshot", repo, revision))
            shutil.copytree(hub.folder, local_dir, dirs_exist_ok=True)
            return str(local_dir)

        monkeypatch.setattr(huggingface_hub, "HfApi", Api)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
        return self


@pytest.fixture
def no_token(monkeypatch):
    monkeypatch.setattr(sam3_download, "hf_token", lambda: None)


def test_a_download_is_verified_and_pinned_then_the_pin_is_used(tiny_bundle, tmp_path, monkeypatch):
    hub = FakeHub(tiny_bundle.sam3_dir).install(monkeypatch)
    folder = fetch_sam3(tmp_path / "sam3", token="hf_test", progress=False)
    check_sam3_dir(folder)
    lock = json.loads((tmp_path / "hashes.lock.json").read_text())
    assert lock == {"sam3/revision": "c0ffee", "sam3/model.safetensors": hub.sha256}
    assert ("snapshot", "facebook/sam3", "c0ffee") in hub.calls
    hub.calls.clear()
    fetch_sam3(tmp_path / "sam3", token="hf_test", progress=False)
    assert not [call for call in hub.calls if call[0] == "model_info"]  # the pinned commit, not main's head


def test_weights_that_differ_from_the_hubs_hash_are_refused(tiny_bundle, tmp_path, monkeypatch):
    FakeHub(tiny_bundle.sam3_dir, sha256="0" * 64).install(monkeypatch)
    with pytest.raises(WeightsError, match="the Hub says 0000"):
        fetch_sam3(tmp_path / "sam3", token="hf_test", progress=False)


def test_no_access_says_what_to_do(tiny_bundle, tmp_path, monkeypatch):
    FakeHub(tiny_bundle.sam3_dir, gated=True).install(monkeypatch)
    with pytest.raises(WeightsError, match="accept the licence on https://huggingface.co/facebook/sam3"):
        fetch_sam3(tmp_path / "sam3", token="hf_test", progress=False)


def test_no_token_says_what_to_do(tmp_path, no_token):
    with pytest.raises(WeightsError, match="no HF_TOKEN.*settings/tokens"):
        fetch_sam3(tmp_path / "sam3", progress=False)


def local_official(tiny_bundle, tmp_path, *extra):
    return cli.main(["prepare", "official", "--dir", str(tmp_path), "--no-progress",
                     "--sam2-checkpoint", str(tiny_bundle.sam2_checkpoint),
                     "--grounding-dino", str(tiny_bundle.grounding_dino_dir), *extra])


def test_official_without_access_prepares_langsam_and_sam2_and_says_how_to_add_sam3(
        tiny_bundle, tmp_path, capsys, no_token):
    assert local_official(tiny_bundle, tmp_path) == 0
    out = capsys.readouterr()
    assert "SAM 3 skipped (no HF_TOKEN)" in out.err and "accept the licence" in out.err and "no SAM 3" in out.out
    bundle = WeightsBundle.load(tmp_path / "official")
    assert bundle.sam3_dir is None and bundle.sam2_checkpoint is not None


def test_sam3_asked_for_by_name_without_access_is_an_error_but_the_rest_is_in_place(
        tiny_bundle, tmp_path, capsys, no_token):
    assert local_official(tiny_bundle, tmp_path, "--sam3", "sam3") == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    assert WeightsBundle.load(tmp_path / "official").grounding_dino_dir is not None


def test_a_local_sam3_folder_is_used_in_place_and_can_be_added_later(tiny_bundle, tmp_path, no_token):
    assert local_official(tiny_bundle, tmp_path) == 0
    assert local_official(tiny_bundle, tmp_path, "--sam3-dir", str(tiny_bundle.sam3_dir)) == 0
    assert WeightsBundle.load(tmp_path / "official").sam3_dir == tiny_bundle.sam3_dir.absolute()


def test_a_folder_that_is_not_sam3_is_refused(tiny_bundle, tmp_path, no_token):
    with pytest.raises(WeightsError, match="model_type 'grounding-dino'"):
        check_sam3_dir(tiny_bundle.grounding_dino_dir)


def test_a_random_bundle_from_before_sam3_gets_one(tiny_bundle, tmp_path):
    root = tmp_path / "tiny"
    WeightsBundle("tiny", tiny_bundle.sam2_checkpoint, tiny_bundle.sam2_config, tiny_bundle.grounding_dino_dir).write(root)
    assert cli.main(["prepare", "tiny", "--dir", str(tmp_path)]) == 0
    bundle = WeightsBundle.load(root)
    assert bundle.sam3_dir == root / "sam3" and bundle.sam2_checkpoint == tiny_bundle.sam2_checkpoint
    check_sam3_dir(bundle.sam3_dir)
