"""What segserve-deploy names and asks for, checked without AWS: names `down` may delete, the AMI it sets (the one
the Dockerfile names), the instance types it refuses."""

from __future__ import annotations

import argparse

import pytest

from deploy.aws import DeployError
from deploy.endpoint_config import INFERENCE_AMI_VERSION, check_instance_type, production_variant
from deploy.naming import MAX_NAME_LENGTH, check_name, is_stamped, is_uploaded_model_data, model_data_key, stamped
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
