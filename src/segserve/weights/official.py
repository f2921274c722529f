"""The catalogue of official weight files: where Meta and IDEA-Research publish them, and their SHA-256.

A file whose publisher gives no SHA-256 has `sha256=None`; the downloader then trusts it on first use and
pins the hash it saw in `hashes.lock.json`. Hugging Face shows a SHA-256 only for LFS files (the weights);
its small JSON/text files are identified by a git SHA-1, so those are trust-on-first-use here, fetched from
a pinned commit so the server cannot change them under us.
"""

from __future__ import annotations

from dataclasses import dataclass

from segserve.contract.errors import WeightsError

# SAM2.1 checkpoints exactly as Meta publishes them (facebookresearch/sam2, checkpoints/download_ckpts.sh).
SAM2_SIZES = ("tiny", "small", "base_plus", "large")

# Sources: tiny and small are the LFS SHA-256 of Meta's own uploads, huggingface.co/facebook/sam2.1-hiera-tiny
# and /sam2.1-hiera-small (blob/main/sam2.1_hiera_{tiny,small}.pt). All four are pinned against these
# dl.fbaipublicfiles.com URLs in computational-cell-analytics/micro-sam, micro_sam/v2/util.py (HASHES, checked
# by pooch on download); base_plus and large match the LFS SHA-256 of public mirrors (camenduru/sam2-1-hiera).
SAM2_SHA256 = {
    "tiny": "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",  # 156,008,466 bytes
    "small": "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",  # 184,416,285 bytes
    "base_plus": "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",  # 323,606,802 bytes
    "large": "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",  # 898,083,611 bytes
}


@dataclass(frozen=True)
class HuggingFaceRepo:
    repo: str
    revision: str  # a commit, not a branch: "main" can move
    weights_sha256: str  # model.safetensors, the only LFS file we fetch


# Revisions: the head of `main` on each repo's commit history page ("Update README.md", a2bb814 and 12bdfa3);
# the weights last changed in 25b0b43 (tiny) and a062f8e (base). Weight hashes: the "Git LFS Details SHA256"
# on huggingface.co/IDEA-Research/grounding-dino-tiny/blob/c254d1f282bf348ab7f5a27d5cf90531eeba69be/model.safetensors
# and huggingface.co/IDEA-Research/grounding-dino-base/blob/refs%2Fpr%2F3/model.safetensors (same blob as main).
GROUNDING_DINO = {
    "tiny": HuggingFaceRepo(
        "IDEA-Research/grounding-dino-tiny",
        "a2bb814dd30d776dcf7e30523b00659f4f141c71",
        "1a2412ef99bd74bcd3c2a246fa1e48581f8889a1300c9051974741314fc042f3",  # 689,359,096 bytes
    ),
    "base": HuggingFaceRepo(
        "IDEA-Research/grounding-dino-base",
        "12bdfa3120f3e7ec7b434d90674b3396eccf88eb",
        "5548f844c928c4b6f411fa8cbcc2bfa8dbbba437cb1d513975519f93c2a9ed21",  # 933,400,872 bytes
    ),
}

# What `from_pretrained(dir, local_files_only=True)` needs; both repos hold all of these. Left out:
# pytorch_model.bin (a duplicate of the weights) and tiny's added_tokens.json (tokenizer.json has them).
GROUNDING_DINO_FILES = (
    "config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "vocab.txt",
)


@dataclass(frozen=True)
class OfficialHosts:
    """Where files are fetched from. The defaults are the real hosts; tests point both at a local server."""

    sam2: str = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
    huggingface: str = "https://huggingface.co"


@dataclass(frozen=True)
class OfficialFile:
    url: str
    path: str  # where it goes, relative to the bundle folder
    sha256: str | None  # None: nothing published, trust on first use


def sam2_checkpoint(size: str, hosts: OfficialHosts) -> OfficialFile:
    if size not in SAM2_SHA256:
        raise WeightsError(f"unknown SAM2.1 size {size!r}; choose one of {', '.join(SAM2_SIZES)}")
    name = f"sam2.1_hiera_{size}.pt"
    return OfficialFile(f"{hosts.sam2}/{name}", name, SAM2_SHA256[size])


def grounding_dino_folder(name: str) -> str:
    return f"grounding-dino-{name}"


def grounding_dino_files(name: str, hosts: OfficialHosts) -> list[OfficialFile]:
    if name not in GROUNDING_DINO:
        raise WeightsError(f"unknown GroundingDINO model {name!r}; choose one of {', '.join(GROUNDING_DINO)}")
    repo = GROUNDING_DINO[name]
    base = f"{hosts.huggingface}/{repo.repo}/resolve/{repo.revision}"
    return [
        OfficialFile(
            f"{base}/{file}",
            f"{grounding_dino_folder(name)}/{file}",
            repo.weights_sha256 if file == "model.safetensors" else None,
        )
        for file in GROUNDING_DINO_FILES
    ]
