"""CloudFormation for segserve-deploy: a stack created or updated through a change set, followed with its events
printed as they come, and deleted.

A change set shows what will change before anything does; one that changes nothing ("The submitted information
didn't contain changes") is an up-to-date stack, not an error: it is deleted and the stack left as it is.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from botocore.exceptions import ClientError, WaiterError

from deploy.aws import DeployError, error_code

POLL_S = 5.0
TIMEOUT_S = 1800.0  # a Lambda, a role and an HTTP API: normally one or two minutes
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_DONE = {"CREATE": "CREATE_COMPLETE", "UPDATE": "UPDATE_COMPLETE"}
_BROKEN = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED")


def describe(cloudformation, stack: str) -> dict | None:
    try:
        return cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise


def tags(stack: dict) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in stack.get("Tags", [])}


def change_set_type(existing: dict | None) -> str:
    """CREATE for a new stack (or one whose first change set was never run), UPDATE for a healthy one."""
    if existing is None or existing["StackStatus"] == "REVIEW_IN_PROGRESS":
        return "CREATE"
    status, name = existing["StackStatus"], existing["StackName"]
    if status in _BROKEN:
        raise DeployError(f"stack {name} is {status} and cannot be updated: remove it with "
                          "`segserve-deploy down` and run this again")
    if status.endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {name} is {status}: wait until it has finished, then run this again")
    return "UPDATE"


def deploy(cloudformation, stack: str, template: str, parameters: dict[str, str], stack_tags: dict[str, str],
           existing: dict | None) -> str:
    """Create or update `stack` with a change set; returns "created", "updated" or "unchanged"."""
    kind = change_set_type(existing)
    change_set = f"segserve-deploy-{datetime.now(UTC):%Y%m%d%H%M%S}"
    created = cloudformation.create_change_set(
        StackName=stack, ChangeSetName=change_set, ChangeSetType=kind, TemplateBody=template,
        Capabilities=["CAPABILITY_IAM"], Description="segserve-deploy ui",
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Tags=[{"Key": k, "Value": v} for k, v in stack_tags.items()])
    change_set_id, stack_id = created["Id"], created["StackId"]
    print(f"change set {change_set} ({kind.lower()} stack {stack}) ...", flush=True)
    try:
        cloudformation.get_waiter("change_set_create_complete").wait(
            ChangeSetName=change_set_id, WaiterConfig={"Delay": POLL_S or 1, "MaxAttempts": 120})
    except WaiterError as exc:
        reason = cloudformation.describe_change_set(ChangeSetName=change_set_id).get("StatusReason", str(exc))
        cloudformation.delete_change_set(ChangeSetName=change_set_id)
        if any(text in reason for text in _NO_CHANGES):
            return "unchanged"
        raise DeployError(f"CloudFormation refused the change set for {stack}: {reason}") from exc
    for change in cloudformation.describe_change_set(ChangeSetName=change_set_id).get("Changes", []):
        resource = change.get("ResourceChange", {})
        print(f"  {resource.get('Action', '?'):<7} {resource.get('LogicalResourceId')} "
              f"({resource.get('ResourceType')})", flush=True)
    before = {event["EventId"] for event in _events(cloudformation, stack_id)}
    cloudformation.execute_change_set(ChangeSetName=change_set_id)
    final = follow(cloudformation, stack_id, set(before))
    if final["StackStatus"] != _DONE[kind]:
        raise DeployError(f"stack {stack} is {final['StackStatus']}: {_failure(cloudformation, stack_id, before)}")
    return "created" if kind == "CREATE" else "updated"


def delete(cloudformation, stack_id: str) -> None:
    before = {event["EventId"] for event in _events(cloudformation, stack_id)}
    cloudformation.delete_stack(StackName=stack_id)
    final = follow(cloudformation, stack_id, set(before))
    if final["StackStatus"] != "DELETE_COMPLETE":
        raise DeployError(f"stack {final['StackName']} is {final['StackStatus']}: "
                          f"{_failure(cloudformation, stack_id, before)} (run down again once that is fixed)")


def follow(cloudformation, stack_id: str, seen: set[str]) -> dict:
    """Print each new stack event until the stack is no longer in progress; returns the stack."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        for event in reversed([e for e in _events(cloudformation, stack_id) if e["EventId"] not in seen]):
            seen.add(event["EventId"])
            reason = f": {event['ResourceStatusReason']}" if event.get("ResourceStatusReason") else ""
            print(f"  {event['Timestamp']:%H:%M:%S} {event['LogicalResourceId']} {event['ResourceStatus']}{reason}",
                  flush=True)
        current = cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]
        if not current["StackStatus"].endswith("_IN_PROGRESS"):
            return current
        if time.monotonic() > deadline:
            raise DeployError(f"stack {current['StackName']} is still {current['StackStatus']} after "
                              f"{TIMEOUT_S / 60:.0f} minutes: see its events in the CloudFormation console")
        time.sleep(POLL_S)


def _events(cloudformation, stack_id: str) -> list[dict]:
    """The stack's events, newest first."""
    events = []
    for page in cloudformation.get_paginator("describe_stack_events").paginate(StackName=stack_id):
        events.extend(page["StackEvents"])
    return events


def _failure(cloudformation, stack_id: str, before: set[str]) -> str:
    """This run's first failure CloudFormation gave a reason for (the rest usually follow from it)."""
    for event in reversed(_events(cloudformation, stack_id)):
        failed = event["ResourceStatus"].endswith("_FAILED") and event.get("ResourceStatusReason")
        if failed and event["EventId"] not in before:
            return f"{event['LogicalResourceId']}: {event['ResourceStatusReason']}"
    return "no reason given (see the stack's events)"
