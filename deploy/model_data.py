"""Model data for `up`: a model store folder packed as model.tar.gz and uploaded to S3, or an s3:// one checked.

The archive is what the Dockerfile's header describes: the router, langsam and sam2 folders at its root, owned by
root and readable by everyone (the container runs as uid 10001; transformers writes model.safetensors 0600),
symbolic links replaced by what they point at, and files hard-linked to each other (weights shared by two models)
stored once.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from tqdm import tqdm

from deploy.aws import DeployError, require, split_s3_url
from segserve.build_info import ModelStoreMismatch, check_built_with
from deploy.naming import model_data_key

MODELS = ("router", "langsam", "sam2")  # serving/entrypoint.sh refuses to start without each of them
OPTIONAL_MODELS = ("sam3",)  # served when the store has it (weights with SAM 3)
_SKIPPED = {"__pycache__", ".DS_Store"}


def resolve(s3, model_data: str, bucket: str, resource_name: str, name: str) -> str:
    """The ModelDataUrl for `model_data` (a folder or s3://…), uploading the folder if it is one."""
    if model_data.startswith("s3://"):
        data_bucket, key = split_s3_url(model_data, "--model-data")
        require(s3.head_object, f"--model-data {model_data} does not exist", Bucket=data_bucket, Key=key)
        return model_data
    folder = Path(model_data).expanduser()
    check_model_store(folder)
    require(s3.head_bucket, f"bucket {bucket!r} does not exist: create it in the endpoint's region", Bucket=bucket)
    key = model_data_key(resource_name, name)
    with tempfile.TemporaryDirectory(prefix="segserve-deploy-") as tmp:
        archive = Path(tmp) / "model.tar.gz"
        pack(folder, archive)
        upload(s3, archive, bucket, key)
    return f"s3://{bucket}/{key}"


def check_model_store(folder: Path) -> None:
    if not folder.is_dir():
        raise DeployError(f"--model-data {folder} is neither a folder nor an s3:// URL")
    missing = [model for model in MODELS if not (folder / model).is_dir()]
    if missing:
        raise DeployError(f"{folder} is not a model store: no {', '.join(missing)} folder "
                          "(build one with `make model-store WEIGHTS=official`)")
    for model in models_in(folder):  # the handlers refuse a store of another version, but only after a 10-minute start
        try:
            check_built_with(folder / model, model)
        except ModelStoreMismatch as exc:
            raise DeployError(f"{exc} (the image `segserve-deploy image` builds from this checkout has the "
                              "installed version)") from exc


def models_in(folder: Path) -> tuple[str, ...]:
    """The models a store holds: the required ones and those optional ones it has."""
    return MODELS + tuple(model for model in OPTIONAL_MODELS if (folder / model).is_dir())


def pack(folder: Path, archive: Path) -> None:
    models = models_in(folder)
    files = [path for model in models for path in sorted((folder / model).rglob("*"))
             if not _SKIPPED.intersection(path.relative_to(folder).parts)]
    total = sum(path.stat().st_size for path in files if path.is_file())
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar, \
            tqdm(total=total, unit="B", unit_scale=True, desc="packing model.tar.gz") as progress:
        for model in models:
            tar.add(folder / model, arcname=model, recursive=False, filter=_readable_by_all)
        for path in files:
            tar.add(path.resolve(), arcname=str(path.relative_to(folder)), recursive=False, filter=_readable_by_all)
            if path.is_file():
                progress.update(path.stat().st_size)


def _readable_by_all(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode |= 0o444
    if info.isdir() or info.mode & 0o111:
        info.mode |= 0o111
    return info


def upload(s3, archive: Path, bucket: str, key: str) -> None:
    size = archive.stat().st_size
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"uploading to s3://{bucket}/{key}") as progress:
        s3.upload_file(str(archive), bucket, key, Callback=progress.update)
