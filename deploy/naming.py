"""How `up` names what it makes, so that `down` and `transform` find exactly that and nothing else.

The endpoint is called NAME. Models, endpoint configs and transform jobs are immutable, so each `up` makes new ones
called NAME-<UTC time>-<4 hex>; `down` deletes what matches that pattern exactly (NAME-2 is another deployment).
Uploaded model data goes to s3://BUCKET/segserve-deploy/NAME/<stamp>/model.tar.gz. The web UI (`ui`) is the
CloudFormation stack NAME-ui, tagged segserve:deployment=NAME (`down` deletes only a stack with that tag), its Lambda
zip s3://BUCKET/segserve-deploy/NAME/ui/<sha256>.zip, BUCKET by default segserve-deploy-<account>-<region>.
"""

from __future__ import annotations

import argparse
import re
import secrets
from datetime import UTC, datetime

from deploy.aws import DeployError

# SageMaker's name rule (endpoint, config, model, job): 63 characters, letters/digits and single-or-more hyphens.
_SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_STAMP_LENGTH = len("-20260101120000-abcd")
MAX_NAME_LENGTH = 63 - _STAMP_LENGTH
VARIANT = "AllTraffic"
MODEL_DATA_PREFIX = "segserve-deploy"
DEPLOYMENT_TAG = "segserve:deployment"  # on everything `up` and `ui` make; its value is NAME


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


def ui_stack_name(name: str) -> str:
    """The UI's CloudFormation stack. Stack names must start with a letter, SageMaker names need not."""
    if not name[:1].isalpha():
        raise DeployError(f"--name {name!r}: the web UI's CloudFormation stack is named NAME-ui, and a stack name "
                          "must start with a letter")
    return f"{name}-ui"


def ui_code_prefix(name: str) -> str:
    return f"{MODEL_DATA_PREFIX}/{name}/ui/"


def ui_code_key(name: str, sha256: str) -> str:
    return f"{ui_code_prefix(name)}{sha256}.zip"


def is_ui_code_key(name: str, bucket_key: str) -> bool:
    """Whether an S3 key is a Lambda zip `ui` uploaded for `name` (never another name's: seg vs seg-2)."""
    return re.fullmatch(re.escape(ui_code_prefix(name)) + r"[0-9a-f]{64}\.zip", bucket_key) is not None


def default_code_bucket(account: str, region: str) -> str:
    return f"{MODEL_DATA_PREFIX}-{account}-{region}"
