"""How `up` names what it makes, so that `down` and `transform` find exactly that and nothing else.

The endpoint is called NAME. Models, endpoint configs and transform jobs are immutable, so each `up` makes new ones
called NAME-<UTC time>-<4 hex>; `down` deletes what matches that pattern exactly (NAME-2 is another deployment).
Uploaded model data goes to s3://BUCKET/segserve-deploy/NAME/<stamp>/model.tar.gz.
"""

from __future__ import annotations

import argparse
import re
import secrets
from datetime import UTC, datetime

# SageMaker's name rule (endpoint, config, model, job): 63 characters, letters/digits and single-or-more hyphens.
_SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_STAMP_LENGTH = len("-20260101120000-abcd")
MAX_NAME_LENGTH = 63 - _STAMP_LENGTH
VARIANT = "AllTraffic"
MODEL_DATA_PREFIX = "segserve-deploy"


def check_name(name: str) -> str:
    """The --name argument type: a valid SageMaker name short enough to carry the stamp."""
    if not _SAGEMAKER_NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise argparse.ArgumentTypeError(
            f"{name!r}: use up to {MAX_NAME_LENGTH} letters, digits and hyphens, starting and ending with a letter "
            "or digit")
    return name


def stamped(name: str) -> str:
    return f"{name}-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"


def is_stamped(name: str, resource_name: str) -> bool:
    return re.fullmatch(re.escape(name) + r"-\d{14}-[0-9a-f]{4}", resource_name) is not None


def model_data_key(resource_name: str, name: str) -> str:
    return f"{MODEL_DATA_PREFIX}/{name}/{resource_name.removeprefix(name + '-')}/model.tar.gz"


def is_uploaded_model_data(name: str, bucket_key: str) -> bool:
    """Whether an S3 key is one `up` uploaded for `name` (so `down` may delete it); a user's own s3:// never is."""
    pattern = re.escape(f"{MODEL_DATA_PREFIX}/{name}/") + r"\d{14}-[0-9a-f]{4}/model\.tar\.gz"
    return re.fullmatch(pattern, bucket_key) is not None
