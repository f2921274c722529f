"""SAM 3 from its Hugging Face repository, whose checkpoints are gated: fetched with the user's HF_TOKEN.

The files a SAM 3 folder needs (config, weights, processor and tokenizer files) come with huggingface_hub's
`snapshot_download` (progress bars, resumable). The weights' SHA-256 is checked against the one the Hub
publishes for that commit (its LFS pointer); the commit and that hash are pinned in hashes.lock.json on the
first download, so a later run refuses a repository that changed under the same name.

Without access (no token, or the licence not yet accepted on the model page) the error says exactly that;
`segserve-weights prepare official` then still prepares langsam and sam2, which serve without SAM 3.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from segserve.contract.errors import WeightsError
from segserve.weights.download import check_pretrained_dir, sha256_of

SAM3_REPOS = {"sam3": "facebook/sam3", "sam3.1": "facebook/sam3.1"}
SAM3_FILES = ["*.json", "*.safetensors", "*.txt"]  # config, weights, processor, tokenizer (not the .pt duplicate)
LOCK = "hashes.lock.json"

GATED_HELP = (
    "SAM 3's weights are gated on Hugging Face. To get them: 1. sign in and accept the licence on "
    "https://huggingface.co/{repo} (access is granted by Meta, usually within minutes); 2. create a read token at "
    "https://huggingface.co/settings/tokens; 3. run again with HF_TOKEN=<token> in the environment. "
    "langsam and sam2 serve without SAM 3 meanwhile."
)


def hf_token() -> str | None:
    """The user's token: HF_TOKEN, else the one `hf auth login` saved (None when neither)."""
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token()


def fetch_sam3(dest: Path, model: str = "sam3", *, progress: bool = True, token: str | None = None) -> Path:
    """Download SAM 3 into `dest` (a folder in the repository's layout), verified; returns `dest`."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if model not in SAM3_REPOS:
        raise WeightsError(f"unknown SAM 3 model {model!r}; choose one of {', '.join(SAM3_REPOS)}")
    repo = SAM3_REPOS[model]
    token = token or hf_token()
    if token is None:
        raise WeightsError("no HF_TOKEN. " + GATED_HELP.format(repo=repo))
    lock_path = dest.parent / LOCK
    lock = json.loads(lock_path.read_text()) if lock_path.is_file() else {}
    pinned = lock.get(f"{dest.name}/revision")
    api = HfApi(token=token)
    try:
        revision = pinned or api.model_info(repo).sha
        (info,) = api.get_paths_info(repo, ["model.safetensors"], revision=revision, expand=True)
        if not progress:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        snapshot_download(repo, revision=revision, local_dir=dest, allow_patterns=SAM3_FILES, token=token)
    except GatedRepoError:
        raise WeightsError(f"no access to {repo} yet. " + GATED_HELP.format(repo=repo)) from None
    except RepositoryNotFoundError:
        raise WeightsError(f"{repo} was not found, or HF_TOKEN cannot see it. " + GATED_HELP.format(repo=repo)) from None
    except (HfHubHTTPError, OSError) as exc:
        raise WeightsError(f"downloading {repo} failed ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                           "run again to resume, or serve without SAM 3") from None
    expected = info.lfs.sha256 if info.lfs else None
    actual = sha256_of(dest / "model.safetensors")
    if expected is not None and actual != expected:
        raise WeightsError(f"{dest}/model.safetensors has SHA-256 {actual}, the Hub says {expected}: delete it and "
                           "run again")
    pinned_hash = lock.get(f"{dest.name}/model.safetensors")
    if pinned_hash is not None and pinned_hash != actual:
        raise WeightsError(f"{dest}/model.safetensors changed since it was first downloaded ({pinned_hash}); "
                           f"delete {lock_path} entries for {dest.name} to trust the new one")
    lock.update({f"{dest.name}/revision": revision, f"{dest.name}/model.safetensors": actual})
    lock_path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    check_sam3_dir(dest)
    return dest


def check_sam3_dir(folder: Path) -> None:
    """A folder the four transformers classes load: a SAM 3 config, weights, processor and tokenizer files."""
    check_pretrained_dir(folder, "SAM 3", ("sam3_video",), _SAM3_NEEDS)


_SAM3_NEEDS = {
    "weights": ("model.safetensors",),
    "processor config": ("processor_config.json", "preprocessor_config.json"),
    "tokenizer": ("tokenizer.json", "vocab.json"),
}
