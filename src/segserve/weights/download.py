"""Get the official weights into a bundle folder, or check a user's own files and point a bundle at them.

Downloads stream to `<file>.part`, are hashed on the way and renamed into place only when the hash matches,
so a file under its final name is always complete. Offline machines fail at once with what to do instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

import requests
from tqdm import tqdm

from segserve.contract.errors import WeightsError
from segserve.weights import official
from segserve.weights.bundle import WeightsBundle, sam2_config_for
from segserve.weights.official import OfficialFile, OfficialHosts

log = logging.getLogger(__name__)

HASH_LOCK = "hashes.lock.json"
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60  # between two chunks, not for the whole file
_CHUNK = 1 << 20

OFFLINE_HELP = (
    "Cannot reach {host} ({error}). This machine looks offline, or the host is blocked. Instead, either use "
    "files you already have: `segserve-weights prepare official --sam2-checkpoint PATH --grounding-dino DIR`, "
    "or serve random weights: `WEIGHTS=tiny make serve`."
)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    url: str, dest: Path, sha256: str | None, *, timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
    progress: bool = True,
) -> Path:
    """Download `url` to `dest`, checking `sha256` when given. A `dest` that already matches is kept as is.

    Without a hash a file on disk proves nothing, so it is fetched again. A leftover `.part` is resumed.
    """
    dest = Path(dest)
    if sha256 is not None and dest.is_file():
        actual = sha256_of(dest)
        if actual != sha256:
            raise WeightsError(
                f"{dest} has SHA-256 {actual}, expected {sha256}: it changed after it was downloaded. "
                "Delete it to download it again."
            )
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    digest = hashlib.sha256()
    done = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={done}-"} if done else {}
    try:
        response = requests.get(url, stream=True, timeout=timeout, headers=headers)
    except (requests.ConnectionError, requests.Timeout) as exc:
        why = _why_unreachable(exc, timeout[0])
        raise WeightsError(OFFLINE_HELP.format(host=urlsplit(url).netloc, error=why)) from None
    with response:
        if response.status_code == 416 and done:  # the .part is not a prefix of this file any more: restart
            part.unlink()
            return download_file(url, dest, sha256, timeout=timeout, progress=progress)
        if response.status_code >= 400:
            raise WeightsError(f"{url} answered HTTP {response.status_code} {response.reason}")
        resuming = response.status_code == 206  # a server that ignores Range answers 200: start over
        if resuming:
            with part.open("rb") as earlier:
                while chunk := earlier.read(_CHUNK):
                    digest.update(chunk)
        try:
            _stream(response, part, digest, resumed_at=done if resuming else 0, progress=progress)
        except requests.RequestException as exc:
            raise WeightsError(
                f"download of {url} broke off ({type(exc).__name__}); run again to resume from {part}"
            ) from exc
    actual = digest.hexdigest()
    if sha256 is not None and actual != sha256:
        part.unlink()
        raise WeightsError(f"{dest.name} from {url} has SHA-256 {actual}, expected {sha256}; it was deleted")
    part.replace(dest)  # atomic: `dest` never holds a partial file
    return dest


def _stream(response: requests.Response, part: Path, digest, *, resumed_at: int, progress: bool) -> None:
    length = int(response.headers.get("Content-Length", 0)) or None
    bar = tqdm(
        total=length and resumed_at + length, initial=resumed_at, desc=part.name.removesuffix(".part"),
        unit="B", unit_scale=True, unit_divisor=1024, disable=None if progress else True,  # None: off if no TTY
    )
    with part.open("ab" if resumed_at else "wb") as out, bar:
        for chunk in response.iter_content(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))


def _why_unreachable(exc: requests.RequestException, connect_timeout: float) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {connect_timeout:g} s"
    if "NameResolutionError" in str(exc) or "Failed to resolve" in str(exc):
        return "DNS lookup failed"
    return "connection refused or reset"


class _HashLock:
    """Hashes seen on first download of files nobody publishes a hash for, keyed by bundle-relative path."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.hashes: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
        except ValueError as exc:
            raise WeightsError(f"{path} is not valid JSON ({exc}); delete it to trust the files anew") from None
        if not isinstance(self.hashes, dict):
            raise WeightsError(f"{path} should map file names to SHA-256; delete it to trust the files anew")

    def record(self, name: str, sha256: str) -> None:
        self.hashes[name] = sha256
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.hashes, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path)


def fetch_official(
    dest_root: Path, sam2_size: str = "small", grounding_dino: str = "tiny", *, progress: bool = True,
    hosts: OfficialHosts = OfficialHosts(),
) -> WeightsBundle:
    """Download SAM2.1 and GroundingDINO into `dest_root`, verify them, and write the bundle manifest."""
    dest_root = Path(dest_root)
    checkpoint = official.sam2_checkpoint(sam2_size, hosts)
    files = [checkpoint, *official.grounding_dino_files(grounding_dino, hosts)]
    dest_root.mkdir(parents=True, exist_ok=True)
    lock = _HashLock(dest_root / HASH_LOCK)
    unpublished = []
    for file in files:
        _fetch_verified(file, dest_root, lock, progress)
        if file.sha256 is None:
            unpublished.append(file.path)
    if unpublished:
        log.warning(
            "NOT verified against a published hash (the publisher gives none): %s. Their SHA-256 from the first "
            "download is pinned in %s and every later run checks them against it.",
            ", ".join(unpublished), lock.path,
        )
    checkpoint_path = dest_root / checkpoint.path
    bundle = WeightsBundle(
        "official", checkpoint_path, sam2_config_for(checkpoint_path),
        dest_root / official.grounding_dino_folder(grounding_dino),
    )
    bundle.write(dest_root)
    return bundle


def _fetch_verified(file: OfficialFile, root: Path, lock: _HashLock, progress: bool) -> None:
    expected = file.sha256 or lock.hashes.get(file.path)
    dest = download_file(file.url, root / file.path, expected, progress=progress)
    if expected is None:
        lock.record(file.path, sha256_of(dest))


# Any one of each group will do: transformers 5 writes processor_config.json, the Hub repos carry
# preprocessor_config.json; BertTokenizer loads from tokenizer.json or vocab.txt.
_GROUNDING_DINO_NEEDS = {
    "weights": ("model.safetensors", "pytorch_model.bin"),
    "image processor config": ("preprocessor_config.json", "processor_config.json"),
    "tokenizer config": ("tokenizer_config.json",),
    "tokenizer vocabulary": ("tokenizer.json", "vocab.txt"),
}


def use_local_files(dest_root: Path, sam2_checkpoint: Path, grounding_dino_dir: Path) -> WeightsBundle:
    """Check the user's own weight files and write a manifest in `dest_root` that points at them (no copy)."""
    # absolute(), not resolve(): a Hub-cache symlink must keep Meta's file name, which sets the config.
    checkpoint = Path(sam2_checkpoint).expanduser().absolute()
    folder = Path(grounding_dino_dir).expanduser().absolute()
    if not checkpoint.is_file():
        raise WeightsError(f"SAM2.1 checkpoint {checkpoint} does not exist")
    config = sam2_config_for(checkpoint)
    _check_sam2_checkpoint(checkpoint)
    _check_grounding_dino_dir(folder)
    bundle = WeightsBundle("local", checkpoint, config, folder)
    bundle.write(Path(dest_root))
    return bundle


def _check_sam2_checkpoint(path: Path) -> None:
    import torch  # heavy; only this check needs it

    try:
        # mmap: nothing is read into memory beyond the pickle's index, so this stays cheap for 900 MB files.
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch reports bad files as RuntimeError, UnpicklingError, EOFError...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path} is not a loadable PyTorch checkpoint: {reason}") from None
    if not isinstance(loaded, dict) or "model" not in loaded:
        found = sorted(map(str, loaded))[:5] if isinstance(loaded, dict) else type(loaded).__name__
        raise WeightsError(
            f"{path} is not a SAM2.1 checkpoint: Meta's format is a dict with a 'model' key, found {found}"
        )


def _check_grounding_dino_dir(folder: Path) -> None:
    check_pretrained_dir(folder, "GroundingDINO", ("grounding-dino",), _GROUNDING_DINO_NEEDS)


def check_pretrained_dir(folder: Path, name: str, model_types: tuple[str, ...], needs: dict[str, tuple]) -> None:
    """A `save_pretrained`-style folder: a config.json of one of `model_types`, and one file of each `needs` group."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise WeightsError(f"{folder} is not a {name} folder: it has no config.json")
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (ValueError, AttributeError) as exc:
        raise WeightsError(f"{config_path} is not a JSON object: {exc}") from None
    if model_type not in model_types:
        raise WeightsError(f"{config_path} has model_type {model_type!r}, expected "
                           + " or ".join(repr(t) for t in model_types))
    missing = [
        f"{what} ({' or '.join(names)})"
        for what, names in needs.items()
        if not any((folder / file).is_file() for file in names)
    ]
    if missing:
        raise WeightsError(f"{name} folder {folder} lacks: {'; '.join(missing)}")
