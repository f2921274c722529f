"""What `up` asks SageMaker for: the production variant and, for asynchronous endpoints, AsyncInferenceConfig."""

from __future__ import annotations

import re

from deploy.aws import DeployError, split_s3_url
from deploy.naming import VARIANT

# The GPU AMI of the Dockerfile's header (label ai.segserve.sagemaker.inference-ami-version; a test keeps them
# equal): NVIDIA driver 580 for torch 2.14's CUDA 13. The default AMI of ml.g4dn/ml.g5 has driver 470, on which
# the container never becomes healthy.
INFERENCE_AMI_VERSION = "al2023-ami-sagemaker-inference-gpu-4-1"
# Pulling a multi-GB image and unpacking model.tar.gz, then four TorchServe workers loading weights onto the GPU.
STARTUP_TIMEOUT_S = 1800
DOWNLOAD_TIMEOUT_S = 1800
# Requests in flight per instance for an asynchronous endpoint: the router's 4 workers (README "Why a router").
ASYNC_CONCURRENCY_PER_INSTANCE = 4
_GPU_FAMILY = re.compile(r"ml\.(g\d+[a-z]*|p\d+[a-z]*)\.")
_UNSUPPORTED = {
    "ml.p2": "Kepler GPUs, too old for CUDA 13", "ml.p3": "Volta GPUs, which CUDA 13 dropped",
    "ml.inf": "AWS Inferentia, not CUDA", "ml.trn": "AWS Trainium, not CUDA",
}


def check_instance_type(instance_type: str) -> bool:
    """True for a GPU instance type; raises for one this image cannot run on. CPU types run it on the CPU."""
    for prefix, why in _UNSUPPORTED.items():
        if instance_type.startswith(prefix):
            raise DeployError(f"{instance_type} has {why}: use ml.g4dn, ml.g5, ml.g6 or newer")
    return _GPU_FAMILY.match(instance_type) is not None


def production_variant(model_name: str, instance_type: str, instances: int, startup_timeout_s: int) -> dict:
    variant = {
        "VariantName": VARIANT, "ModelName": model_name, "InstanceType": instance_type,
        "InitialInstanceCount": instances, "InitialVariantWeight": 1.0,
        "ContainerStartupHealthCheckTimeoutInSeconds": startup_timeout_s,
        "ModelDataDownloadTimeoutInSeconds": DOWNLOAD_TIMEOUT_S,
    }
    if check_instance_type(instance_type):
        variant["InferenceAmiVersion"] = INFERENCE_AMI_VERSION
    return variant


def async_inference_config(output: str) -> dict:
    split_s3_url(output, "--async-output")
    output = output.rstrip("/")
    return {
        "OutputConfig": {"S3OutputPath": f"{output}/", "S3FailurePath": f"{output}/failures/"},
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": ASYNC_CONCURRENCY_PER_INSTANCE},
    }
