"""What segserve-deploy names and asks for, checked without AWS: names `down` may delete, the AMI it sets (the one
the Dockerfile names), the instance types it refuses, the UI stack's name and which change set it gets."""

from __future__ import annotations

import argparse

import pytest

from deploy.aws import DeployError
from deploy.endpoint_config import INFERENCE_AMI_VERSION, check_instance_type, production_variant
from deploy.naming import (
    MAX_NAME_LENGTH,
    check_name,
    is_stamped,
    is_ui_code_key,
    is_uploaded_model_data,
    model_data_key,
    stamped,
    ui_code_key,
    ui_stack_name,
)
from deploy.stack import change_set_type
from tests.unit.dockerfile_model import DOCKERFILE, RUNTIME_STAGE, Dockerfile


def test_the_inference_ami_is_the_one_the_dockerfile_names():
    labels = Dockerfile(DOCKERFILE.read_text()).labels(RUNTIME_STAGE)
    assert labels["ai.segserve.sagemaker.inference-ami-version"] == INFERENCE_AMI_VERSION
    assert INFERENCE_AMI_VERSION in DOCKERFILE.read_text().split("FROM", 1)[0]  # and the header's prose


def test_stamped_names_are_valid_distinct_and_recognised_only_for_their_own_name():
    name = "a" * MAX_NAME_LENGTH
    first, second = stamped(name), stamped(name)
    assert first != second and len(first) == 63
    assert check_name(name) == name and is_stamped(name, first)
    assert not is_stamped("seg", stamped("seg-2"))  # another deployment whose name starts the same
    assert not is_stamped("seg", "seg-handmade")


def test_uploaded_model_data_is_recognised_only_under_its_own_name():
    resource = stamped("seg")
    assert is_uploaded_model_data("seg", model_data_key(resource, "seg"))
    assert not is_uploaded_model_data("seg", model_data_key(stamped("seg-2"), "seg-2"))
    assert not is_uploaded_model_data("seg", "models/model.tar.gz")


def test_ui_zips_are_recognised_only_under_their_own_name():
    sha = "0" * 64
    assert is_ui_code_key("seg", ui_code_key("seg", sha))
    assert not is_ui_code_key("seg", ui_code_key("seg-2", sha))
    assert not is_ui_code_key("seg", model_data_key(stamped("seg"), "seg"))
    assert not is_ui_code_key("seg", ui_code_key("seg", "f" * 63))


def test_the_ui_stack_is_named_after_the_deployment_and_starts_with_a_letter():
    assert ui_stack_name("segserve") == "segserve-ui"
    longest = ui_stack_name("a" * MAX_NAME_LENGTH)
    assert len(longest) <= 64  # the Lambda function is named after the stack: 64 characters at most
    with pytest.raises(DeployError, match="must start with a letter"):
        ui_stack_name("1seg")


@pytest.mark.parametrize(("status", "kind"), [
    (None, "CREATE"), ("REVIEW_IN_PROGRESS", "CREATE"), ("CREATE_COMPLETE", "UPDATE"),
    ("UPDATE_COMPLETE", "UPDATE"), ("UPDATE_ROLLBACK_COMPLETE", "UPDATE"),
])
def test_a_change_set_creates_or_updates_by_the_stacks_state(status, kind):
    assert change_set_type(status and {"StackName": "s-ui", "StackStatus": status}) == kind


@pytest.mark.parametrize(("status", "message"), [
    ("ROLLBACK_COMPLETE", "segserve-deploy down"), ("DELETE_FAILED", "segserve-deploy down"),
    ("UPDATE_IN_PROGRESS", "wait until it has finished"), ("CREATE_IN_PROGRESS", "wait until it has finished"),
])
def test_a_stack_that_cannot_take_a_change_set_is_refused_with_what_to_do(status, message):
    with pytest.raises(DeployError, match=message):
        change_set_type({"StackName": "s-ui", "StackStatus": status})


@pytest.mark.parametrize("bad", ["", "-seg", "seg-", "seg_1", "a" * (MAX_NAME_LENGTH + 1)])
def test_bad_names_are_refused(bad):
    with pytest.raises(argparse.ArgumentTypeError):
        check_name(bad)


@pytest.mark.parametrize(("instance_type", "gpu"), [
    ("ml.g4dn.xlarge", True), ("ml.g5.2xlarge", True), ("ml.g6e.xlarge", True), ("ml.p4d.24xlarge", True),
    ("ml.m5.xlarge", False), ("ml.c5.2xlarge", False),
])
def test_the_gpu_ami_is_set_for_gpu_instances_only(instance_type, gpu):
    variant = production_variant("m", instance_type, 1, 600)
    assert check_instance_type(instance_type) is gpu
    assert (variant.get("InferenceAmiVersion") == INFERENCE_AMI_VERSION) is gpu


@pytest.mark.parametrize(("instance_type", "why"), [
    ("ml.p3.2xlarge", "Volta"), ("ml.p2.xlarge", "Kepler"), ("ml.inf2.xlarge", "Inferentia"),
])
def test_gpus_cuda_13_cannot_use_are_refused(instance_type, why):
    with pytest.raises(DeployError, match=why):
        check_instance_type(instance_type)
