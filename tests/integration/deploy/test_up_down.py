"""`up`, a zero-downtime `up` again, and `down`, against moto over HTTP: what each leaves in the account."""

from __future__ import annotations

import io
import tarfile

import pytest
from botocore.exceptions import ClientError

from deploy.endpoint_config import INFERENCE_AMI_VERSION, STARTUP_TIMEOUT_S
from tests.integration.deploy.cli import BUCKET, IMAGE_URI, ROLE_ARN, run_cli, up_args

NAME = "seg-test"
TARGET = {"ServiceNamespace": "sagemaker", "ResourceIds": [f"endpoint/{NAME}/variant/AllTraffic"]}


def _endpoint(sagemaker, name=NAME):
    endpoint = sagemaker.describe_endpoint(EndpointName=name)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    return endpoint, config, config["ProductionVariants"][0]


def _missing(call, **kwargs) -> bool:
    try:
        call(**kwargs)
    except ClientError:
        return True
    return False


def test_up_creates_model_config_endpoint_data_and_autoscaling(aws, capsys, model_store):
    result = run_cli(capsys, *up_args(NAME, str(model_store), "--max-instances", "3"))
    assert result.status == 0, result.err
    sagemaker = aws.client("sagemaker")
    endpoint, config, variant = _endpoint(sagemaker)
    assert endpoint["EndpointStatus"] == "InService"
    assert variant["InstanceType"] == "ml.g4dn.xlarge" and variant["InitialInstanceCount"] == 1
    assert variant["InferenceAmiVersion"] == INFERENCE_AMI_VERSION
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == STARTUP_TIMEOUT_S
    assert "AsyncInferenceConfig" not in config
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    assert model["ExecutionRoleArn"] == ROLE_ARN
    assert model["PrimaryContainer"]["Image"] == IMAGE_URI
    data_url = model["PrimaryContainer"]["ModelDataUrl"]
    assert data_url.startswith(f"s3://{BUCKET}/segserve-deploy/{NAME}/") and data_url.endswith("/model.tar.gz")
    assert data_url in result.out and endpoint["EndpointName"] in result.out

    archive = aws.client("s3").get_object(Bucket=BUCKET, Key=data_url.split("/", 3)[3])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert {"router", "langsam", "sam2", "langsam/weights/model.safetensors",
                "sam2/built-with.json"} <= set(members)
        assert not [name for name in members if "__pycache__" in name]
        assert all(m.uid == 0 and m.gid == 0 and m.mode & 0o444 == 0o444 for m in members.values())
        assert all(m.mode & 0o111 == 0o111 for m in members.values() if m.isdir())
        link = members["sam2/config.yaml"]
        assert link.isfile() and tar.extractfile(link).read() == b"# router handler\n"  # the file, not a link

    autoscaling = aws.client("application-autoscaling")
    (target,) = autoscaling.describe_scalable_targets(**TARGET)["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    (policy,) = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == \
        "SageMakerVariantInvocationsPerInstance"
    assert tracking["TargetValue"] == 60


def test_second_up_updates_in_place_and_deletes_the_replaced_config(aws, capsys, model_store, update_endpoint):
    assert run_cli(capsys, *up_args(NAME, str(model_store), "--max-instances", "3")).status == 0
    sagemaker = aws.client("sagemaker")
    first, first_config, first_variant = _endpoint(sagemaker)
    model_data = sagemaker.describe_model(ModelName=first_variant["ModelName"])["PrimaryContainer"]["ModelDataUrl"]

    result = run_cli(capsys, *up_args(NAME, model_data, "--instances", "2", "--max-instances", "4"))
    assert result.status == 0, result.err
    second, second_config, second_variant = _endpoint(sagemaker)
    assert update_endpoint.calls == [(NAME, second["EndpointConfigName"])]
    assert second["EndpointConfigName"] != first["EndpointConfigName"]
    assert second["CreationTime"] == first["CreationTime"]  # the same endpoint, not a new one
    assert second["ProductionVariants"][0]["DesiredInstanceCount"] == 2
    assert second_variant["InitialInstanceCount"] == 2
    assert _missing(sagemaker.describe_endpoint_config, EndpointConfigName=first["EndpointConfigName"])
    assert _missing(sagemaker.describe_model, ModelName=first_variant["ModelName"])
    assert sagemaker.describe_model(ModelName=second_variant["ModelName"])["PrimaryContainer"]["ModelDataUrl"] \
        == model_data  # an s3:// model data is used as it is
    assert f"deleted the replaced endpoint config {first['EndpointConfigName']}" in result.out
    (target,) = aws.client("application-autoscaling").describe_scalable_targets(**TARGET)["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)


def test_an_update_keeps_the_instances_autoscaling_added_within_the_new_bounds(aws, capsys, model_store):
    assert run_cli(capsys, *up_args(NAME, str(model_store), "--max-instances", "5")).status == 0
    sagemaker = aws.client("sagemaker")
    sagemaker.update_endpoint_weights_and_capacities(  # what autoscaling does under load
        EndpointName=NAME, DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 4}])
    assert run_cli(capsys, *up_args(NAME, str(model_store), "--max-instances", "5")).status == 0
    assert _endpoint(sagemaker)[2]["InitialInstanceCount"] == 4
    assert run_cli(capsys, *up_args(NAME, str(model_store), "--max-instances", "3")).status == 0
    assert _endpoint(sagemaker)[2]["InitialInstanceCount"] == 3


def test_an_instance_type_change_deregisters_autoscaling_for_the_update_and_puts_it_back(
        aws, capsys, model_store, update_endpoint):
    """AWS refuses UpdateEndpoint to another instance type while the variant is a scalable target."""
    assert run_cli(capsys, *up_args(NAME, str(model_store), "--max-instances", "3")).status == 0
    assert run_cli(capsys, *up_args(NAME, str(model_store), "--max-instances", "3")).status == 0  # same type
    result = run_cli(capsys, *up_args(NAME, str(model_store), "--max-instances", "3",
                                      "--instance-type", "ml.g4dn.2xlarge"))
    assert result.status == 0, result.err
    assert update_endpoint.scalable_during == [True, False]
    _, _, variant = _endpoint(aws.client("sagemaker"))
    assert variant["InstanceType"] == "ml.g4dn.2xlarge"
    autoscaling = aws.client("application-autoscaling")
    (target,) = autoscaling.describe_scalable_targets(**TARGET)["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    assert len(autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]) == 1


def test_an_update_sagemaker_rolls_back_leaves_the_serving_config_and_deletes_the_new_one(
        aws, capsys, model_store, update_endpoint):
    assert run_cli(capsys, *up_args(NAME, str(model_store))).status == 0
    sagemaker = aws.client("sagemaker")
    before, _, variant = _endpoint(sagemaker)
    update_endpoint.roll_back_reason = "The primary container did not pass the ping health check."

    result = run_cli(capsys, *up_args(NAME, str(model_store), "--instances", "2"))
    assert result.status == 1
    assert "rolled the update back" in result.err and "ping health check" in result.err
    ((_, attempted),) = update_endpoint.calls
    assert _missing(sagemaker.describe_endpoint_config, EndpointConfigName=attempted)
    assert _missing(sagemaker.describe_model, ModelName=attempted)
    after, _, _ = _endpoint(sagemaker)
    assert after["EndpointConfigName"] == before["EndpointConfigName"]
    assert sagemaker.describe_model(ModelName=variant["ModelName"])  # the serving model is kept


def test_async_output_makes_an_asynchronous_endpoint_that_scales_to_zero(aws, capsys, model_store):
    result = run_cli(capsys, *up_args(NAME, str(model_store), "--async-output", f"s3://{BUCKET}/async"))
    assert result.status == 0, result.err
    _, config, _ = _endpoint(aws.client("sagemaker"))
    output = config["AsyncInferenceConfig"]["OutputConfig"]
    assert output == {"S3OutputPath": f"s3://{BUCKET}/async/", "S3FailurePath": f"s3://{BUCKET}/async/failures/"}
    assert config["AsyncInferenceConfig"]["ClientConfig"]["MaxConcurrentInvocationsPerInstance"] == 4

    autoscaling = aws.client("application-autoscaling")
    (target,) = autoscaling.describe_scalable_targets(**TARGET)["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 1)
    policies = {p["PolicyName"]: p for p in autoscaling.describe_scaling_policies(
        ServiceNamespace="sagemaker")["ScalingPolicies"]}
    backlog = policies[f"{NAME}-backlog-per-instance"]["TargetTrackingScalingPolicyConfiguration"]
    assert backlog["CustomizedMetricSpecification"]["MetricName"] == "ApproximateBacklogSizePerInstance"
    step = policies[f"{NAME}-scale-out-from-zero"]
    assert step["PolicyType"] == "StepScaling"
    (alarm,) = aws.client("cloudwatch").describe_alarms(AlarmNames=[f"{NAME}-has-backlog-without-capacity"])[
        "MetricAlarms"]
    assert alarm["MetricName"] == "HasBacklogWithoutCapacity"
    assert alarm["AlarmActions"] == [step["PolicyARN"]]


def test_down_deletes_everything_of_that_name_and_only_that(aws, capsys, model_store):
    assert run_cli(capsys, *up_args(NAME, str(model_store), "--async-output", f"s3://{BUCKET}/a")).status == 0
    assert run_cli(capsys, *up_args(f"{NAME}-2", str(model_store))).status == 0  # another deployment

    result = run_cli(capsys, "down", "--name", NAME)
    assert result.status == 0, result.err
    sagemaker, s3 = aws.client("sagemaker"), aws.client("s3")
    assert _missing(sagemaker.describe_endpoint, EndpointName=NAME)
    names = [m["ModelName"] for m in sagemaker.list_models()["Models"]]
    configs = [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]]
    assert len(names) == len(configs) == 1 and names[0].startswith(f"{NAME}-2-")
    assert configs == names
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert len(keys) == 1 and keys[0].startswith(f"segserve-deploy/{NAME}-2/")
    autoscaling = aws.client("application-autoscaling")
    assert autoscaling.describe_scalable_targets(**TARGET)["ScalableTargets"] == []
    assert autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
    assert aws.client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert sagemaker.describe_endpoint(EndpointName=f"{NAME}-2")["EndpointStatus"] == "InService"

    again = run_cli(capsys, "down", "--name", NAME)
    assert again.status == 0, again.err
    assert f"nothing to delete: no deployment named {NAME}" in again.out


def test_down_keeps_model_data_when_asked_and_never_a_users_own(aws, capsys, model_store):
    s3 = aws.client("s3")
    own = "models/mine/model.tar.gz"
    s3.put_object(Bucket=BUCKET, Key=own, Body=b"tar")
    assert run_cli(capsys, *up_args(NAME, f"s3://{BUCKET}/{own}")).status == 0
    assert run_cli(capsys, "down", "--name", NAME).status == 0
    assert s3.head_object(Bucket=BUCKET, Key=own)["ContentLength"] == 3

    assert run_cli(capsys, *up_args(NAME, str(model_store))).status == 0
    result = run_cli(capsys, "down", "--name", NAME, "--keep-model-data")
    assert result.status == 0 and "deleted model data" not in result.out
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert len(keys) == 2 and own in keys


@pytest.mark.parametrize(("extra", "message"), [
    (["--instances", "0"], "--instances must be at least 1"),
    (["--min-instances", "0"], "needs an asynchronous endpoint"),
    (["--instances", "3", "--max-instances", "2"], "<= --max-instances (2)"),
    (["--instance-type", "ml.p3.2xlarge"], "Volta"),
])
def test_up_refuses_bad_settings_before_making_anything(aws, capsys, model_store, extra, message):
    result = run_cli(capsys, *up_args(NAME, str(model_store), *extra))
    assert result.status == 1
    assert message in result.err and "Traceback" not in result.err
    assert aws.client("sagemaker").list_models()["Models"] == []


def test_up_refuses_a_model_store_built_by_another_version(aws, capsys, model_store):
    (model_store / "sam2" / "built-with.json").write_text('{"package": "segserve", "version": "0.0.1"}\n')
    result = run_cli(capsys, *up_args(NAME, str(model_store)))
    assert result.status == 1
    assert "model 'sam2'" in result.err and "built by segserve 0.0.1" in result.err
    assert aws.client("sagemaker").list_models()["Models"] == []
    assert "Contents" not in aws.client("s3").list_objects_v2(Bucket=BUCKET)  # nothing uploaded


def test_up_names_what_is_missing(aws, capsys, tmp_path):
    (tmp_path / "router").mkdir()
    result = run_cli(capsys, *up_args(NAME, str(tmp_path)))
    assert result.status == 1 and "no langsam, sam2 folder" in result.err
    result = run_cli(capsys, *up_args(NAME, f"s3://{BUCKET}/nothing/model.tar.gz"))
    assert result.status == 1 and "does not exist" in result.err
    assert aws.client("sagemaker").list_models()["Models"] == []
