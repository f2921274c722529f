"""Application Auto Scaling for the endpoint's variant, applied by `up` and removed by `up` (before an instance-type
change, which AWS refuses while the variant is a scalable target) and by `down`.

Real time: target tracking on SageMakerVariantInvocationsPerInstance (invocations per instance per minute).
Asynchronous: target tracking on the backlog per instance, which may scale in to 0 instances; since no instance
means no per-instance metric, a step policy on the HasBacklogWithoutCapacity alarm starts the first one.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from deploy.aws import is_missing
from deploy.naming import VARIANT

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@dataclass(frozen=True)
class ScalingPlan:
    min_instances: int
    max_instances: int
    asynchronous: bool
    target: float  # invocations per instance per minute, or queued requests per instance (asynchronous)


def resource_id(name: str) -> str:
    return f"endpoint/{name}/variant/{VARIANT}"


def policy_names(name: str) -> dict[str, str]:
    return {"invocations": f"{name}-invocations-per-instance", "backlog": f"{name}-backlog-per-instance",
            "from_zero": f"{name}-scale-out-from-zero"}


def alarm_name(name: str) -> str:
    return f"{name}-has-backlog-without-capacity"


def current_target(autoscaling, name: str) -> dict | None:
    targets = autoscaling.describe_scalable_targets(
        ServiceNamespace=NAMESPACE, ResourceIds=[resource_id(name)], ScalableDimension=DIMENSION)["ScalableTargets"]
    return targets[0] if targets else None


def apply(autoscaling, cloudwatch, name: str, plan: ScalingPlan) -> list[str]:
    """Register the variant and put its policies; returns the policy names. No range → no scaling at all."""
    if plan.max_instances <= plan.min_instances:
        remove(autoscaling, cloudwatch, name)
        return []
    autoscaling.register_scalable_target(
        ServiceNamespace=NAMESPACE, ResourceId=resource_id(name), ScalableDimension=DIMENSION,
        MinCapacity=plan.min_instances, MaxCapacity=plan.max_instances)
    names = policy_names(name)
    if not plan.asynchronous:
        _remove_scale_from_zero(autoscaling, cloudwatch, name)
        _target_tracking(autoscaling, name, names["invocations"], plan.target, {
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}},
            scale_in_cooldown=300, scale_out_cooldown=60)
        return [names["invocations"]]
    _target_tracking(autoscaling, name, names["backlog"], plan.target, {
        "CustomizedMetricSpecification": {
            "MetricName": "ApproximateBacklogSizePerInstance", "Namespace": "AWS/SageMaker",
            "Dimensions": [{"Name": "EndpointName", "Value": name}], "Statistic": "Average"}},
        scale_in_cooldown=600, scale_out_cooldown=300)
    if plan.min_instances > 0:
        _remove_scale_from_zero(autoscaling, cloudwatch, name)
        return [names["backlog"]]
    step = autoscaling.put_scaling_policy(
        PolicyName=names["from_zero"], ServiceNamespace=NAMESPACE, ResourceId=resource_id(name),
        ScalableDimension=DIMENSION, PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Average", "Cooldown": 300,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]})
    cloudwatch.put_metric_alarm(
        AlarmName=alarm_name(name), AlarmDescription=f"segserve-deploy: start an instance of {name} for its queue",
        Namespace="AWS/SageMaker", MetricName="HasBacklogWithoutCapacity",
        Dimensions=[{"Name": "EndpointName", "Value": name}], Statistic="Average", Period=60, EvaluationPeriods=2,
        DatapointsToAlarm=2, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="missing", AlarmActions=[step["PolicyARN"]])
    return [names["backlog"], names["from_zero"]]


def _target_tracking(autoscaling, name: str, policy: str, target: float, metric: dict, *,
                     scale_in_cooldown: int, scale_out_cooldown: int) -> None:
    autoscaling.put_scaling_policy(
        PolicyName=policy, ServiceNamespace=NAMESPACE, ResourceId=resource_id(name), ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": target, **metric,
            "ScaleInCooldown": scale_in_cooldown, "ScaleOutCooldown": scale_out_cooldown})


def _remove_scale_from_zero(autoscaling, cloudwatch, name: str) -> None:
    cloudwatch.delete_alarms(AlarmNames=[alarm_name(name)])
    if policy_names(name)["from_zero"] in _policies(autoscaling, name):
        _delete_policy(autoscaling, name, policy_names(name)["from_zero"])


def _policies(autoscaling, name: str) -> list[str]:
    return [policy["PolicyName"] for policy in autoscaling.describe_scaling_policies(
        ServiceNamespace=NAMESPACE, ResourceId=resource_id(name), ScalableDimension=DIMENSION)["ScalingPolicies"]]


def _delete_policy(autoscaling, name: str, policy: str) -> None:
    try:
        autoscaling.delete_scaling_policy(
            PolicyName=policy, ServiceNamespace=NAMESPACE, ResourceId=resource_id(name), ScalableDimension=DIMENSION)
    except ClientError as exc:
        if not is_missing(exc):
            raise


def remove(autoscaling, cloudwatch, name: str) -> bool:
    """Delete the alarm, every policy on the variant and the scalable target; False if there was nothing."""
    cloudwatch.delete_alarms(AlarmNames=[alarm_name(name)])
    policies = _policies(autoscaling, name)
    for policy in policies:
        _delete_policy(autoscaling, name, policy)
    if current_target(autoscaling, name) is None:
        return bool(policies)
    try:
        autoscaling.deregister_scalable_target(
            ServiceNamespace=NAMESPACE, ResourceId=resource_id(name), ScalableDimension=DIMENSION)
    except ClientError as exc:
        if not is_missing(exc):
            raise
    return True
