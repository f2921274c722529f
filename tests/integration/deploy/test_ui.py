"""`ui`, `ui` again (a no-op, then an update), and `down`, against moto over HTTP: the stack, its Lambda, role and log
groups, the zip in S3 — and that nothing of another name is touched.

moto's CloudFormation creates the IAM role, the Lambda, its permissions and the log groups for real, and the HTTP API
itself (conftest.py adds it), but skips its routes, integration and stage (with a warning): those, the page's
routes too, are checked by tests/unit/test_lambda_template.py and cfn-lint instead.
"""

from __future__ import annotations

import ast
import io
import re
import zipfile

import pytest

from deploy import lambda_package
from tests.integration.deploy.cli import run_cli

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..ApiGatewayV2")

NAME = "seg-ui-test"
STACK = f"{NAME}-ui"
BUCKET = "segserve-deploy-123456789012-us-east-1"  # the default: moto's account, the region of cli.REGION


def _stack(aws, name=STACK) -> dict:
    return aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]


def _zips(aws, name=NAME) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"segserve-deploy/{name}/ui/")
    return [item["Key"] for item in listed.get("Contents", [])]


def _policy(aws, role_arn: str) -> list[dict]:
    iam = aws.client("iam")
    role = role_arn.rsplit("/", 1)[1]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(document, str):  # moto stores a CloudFormation inline policy as the Python repr of the dict
        document = ast.literal_eval(document)
    return document["Statement"]


def test_ui_creates_the_stack_lambda_role_and_log_groups(aws, capsys):
    result = run_cli(capsys, "ui", "--name", NAME)
    assert result.status == 0, result.err
    assert f"stack {STACK}: created" in result.out
    assert f"warning: there is no endpoint {NAME} (yet)" in result.out
    stack = _stack(aws)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {"Key": "segserve:deployment", "Value": NAME} in stack["Tags"]

    function = aws.client("lambda").get_function(FunctionName=STACK)["Configuration"]
    assert function["Handler"] == "lambda_function.lambda_handler"
    assert function["Environment"]["Variables"]["ENDPOINT_NAME"] == NAME
    assert function["Environment"]["Variables"]["ALLOWED_ORIGINS"] == ""  # same origin: no CORS
    (key,) = _zips(aws)
    code = aws.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert function["CodeSize"] == len(code)
    with zipfile.ZipFile(io.BytesIO(code)) as archive:
        names = set(archive.namelist())
    assert {"lambda_function.py", "segserve/client/endpoint.py", "web/index.html", "web/app.css",
            "web/js/main.js"} <= names
    assert not {"web/README.md", "web/package.json"} & names

    statements = _policy(aws, function["Role"])
    invoke = [s for s in statements if s["Action"] == "sagemaker:InvokeEndpoint"]
    assert [s["Resource"] for s in invoke] == [f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{NAME}"]
    logs = [s for s in statements if s is not invoke[0]]
    assert [sorted(s["Action"]) for s in logs] == [["logs:CreateLogStream", "logs:PutLogEvents"]]
    # its own log group only (AWS's GetAtt Arn ends in ":*", the group's streams; moto's stops at the name)
    group = rf"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{STACK}(:\*)?"
    assert re.fullmatch(group, logs[0]["Resource"])
    groups = {g["logGroupName"]: g for g in aws.client("logs").describe_log_groups()["logGroups"]}
    assert {f"/aws/lambda/{STACK}", f"/aws/apigateway/{STACK}"} <= set(groups)
    assert groups[f"/aws/lambda/{STACK}"]["retentionInDays"] == 30

    (api,) = aws.client("apigatewayv2").get_apis()["Items"]
    assert api["Name"] == STACK and api["ProtocolType"] == "HTTP"
    assert result.out.splitlines()[-1] == f"open https://{api['ApiId']}.execute-api.us-east-1.amazonaws.com/"


def test_a_second_ui_is_a_no_op_and_a_new_origin_an_update(aws, capsys):
    assert run_cli(capsys, "ui", "--name", NAME).status == 0
    cloudformation = aws.client("cloudformation")
    events = len(cloudformation.describe_stack_events(StackName=STACK)["StackEvents"])
    change_sets = cloudformation.list_change_sets(StackName=STACK)["Summaries"]  # moto keeps executed ones

    again = run_cli(capsys, "ui", "--name", NAME)
    assert again.status == 0, again.err
    assert f"stack {STACK}: unchanged (nothing to change)" in again.out
    assert re.fullmatch(r"open https://\w+\.execute-api\.us-east-1\.amazonaws\.com/", again.out.splitlines()[-1])
    assert len(cloudformation.describe_stack_events(StackName=STACK)["StackEvents"]) == events  # nothing ran
    assert cloudformation.list_change_sets(StackName=STACK)["Summaries"] == change_sets  # the empty one is gone

    origin = run_cli(capsys, "ui", "--name", NAME, "--allowed-origin", "https://tools.example.com/",
                     "--allowed-origin", "http://localhost:8000")
    assert origin.status == 0, origin.err
    assert f"stack {STACK}: updated" in origin.out and "UPDATE_COMPLETE" in origin.out
    assert _stack(aws)["StackStatus"] == "UPDATE_COMPLETE"
    variables = aws.client("lambda").get_function(FunctionName=STACK)["Configuration"]["Environment"]["Variables"]
    assert variables["ALLOWED_ORIGINS"] == "https://tools.example.com,http://localhost:8000"


def test_new_page_files_are_a_new_zip_and_the_replaced_one_is_deleted(aws, capsys, monkeypatch):
    assert run_cli(capsys, "ui", "--name", NAME).status == 0
    (first,) = _zips(aws)
    monkeypatch.setattr(lambda_package, "PAGE_SUFFIXES", (*lambda_package.PAGE_SUFFIXES, ".md"))  # + README.md

    result = run_cli(capsys, "ui", "--name", NAME)
    assert result.status == 0, result.err
    (second,) = _zips(aws)
    assert second != first and f"deleted the replaced zip s3://{BUCKET}/{first}" in result.out
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in _stack(aws)["Parameters"]}
    assert parameters["CodeS3Key"] == second


def test_down_removes_the_stack_and_its_zips_only_for_its_name_and_is_safe_twice(aws, capsys):
    other = f"{NAME}-2"  # its stack is seg-ui-test-2-ui, its zips under segserve-deploy/seg-ui-test-2/
    assert run_cli(capsys, "ui", "--name", NAME).status == 0
    assert run_cli(capsys, "ui", "--name", other).status == 0

    result = run_cli(capsys, "down", "--name", NAME)
    assert result.status == 0, result.err
    assert f"deleted web UI stack {STACK}" in result.out
    cloudformation = aws.client("cloudformation")
    names = {s["StackName"]: s["StackStatus"] for s in cloudformation.list_stacks()["StackSummaries"]}
    assert names[STACK] == "DELETE_COMPLETE"
    assert aws.client("lambda").list_functions()["Functions"][0]["FunctionName"] == f"{other}-ui"
    assert _zips(aws) == [] and len(_zips(aws, other)) == 1
    assert _stack(aws, f"{other}-ui")["StackStatus"] == "CREATE_COMPLETE"
    assert [api["Name"] for api in aws.client("apigatewayv2").get_apis()["Items"]] == [f"{other}-ui"]

    again = run_cli(capsys, "down", "--name", NAME)
    assert again.status == 0, again.err
    assert f"nothing to delete: no deployment named {NAME}" in again.out


LOG_GROUP_ONLY = """Resources:
  Logs:
    Type: AWS::Logs::LogGroup
"""


def test_a_stack_of_that_name_that_ui_did_not_make_is_left_alone(aws, capsys):
    aws.client("cloudformation").create_stack(StackName=STACK, TemplateBody=LOG_GROUP_ONLY)

    refused = run_cli(capsys, "ui", "--name", NAME)
    assert refused.status == 1
    assert f"stack {STACK} exists but was not made by `segserve-deploy ui --name {NAME}`" in refused.err
    down = run_cli(capsys, "down", "--name", NAME)
    assert down.status == 0 and f"left stack {STACK} alone" in down.out
    assert _stack(aws)["StackStatus"] == "CREATE_COMPLETE"


def test_dry_run_says_what_it_would_do_and_changes_nothing(aws, capsys):
    result = run_cli(capsys, "ui", "--name", NAME, "--dry-run")
    assert result.status == 0, result.err
    assert f"# would create stack {STACK}" in result.out
    assert f"# would upload the Lambda zip" in result.out and f"s3://{BUCKET}/segserve-deploy/{NAME}/ui/" in result.out
    assert "#   EndpointName=seg-ui-test" in result.out
    assert aws.client("cloudformation").list_stacks()["StackSummaries"] == []
    assert BUCKET not in {b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]}


def test_a_bucket_given_must_exist(aws, capsys):
    result = run_cli(capsys, "ui", "--name", NAME, "--bucket", "no-such-bucket")
    assert result.status == 1
    assert result.err == ("segserve-deploy ui: --bucket no-such-bucket: no such bucket (create it, or leave "
                          "--bucket out)\n")


@pytest.mark.parametrize(("argv", "message"), [
    (["--name", "Segserve"], "deploy the endpoint with a lower-case --name"),
    (["--name", "seg", "--endpoint-name", "Seg"], "endpoint name 'Seg'"),
    (["--name", "1seg"], "a stack name must start with a letter"),
])
def test_names_cloudformation_or_iam_cannot_take_are_refused_before_anything_is_made(aws, capsys, argv, message):
    result = run_cli(capsys, "ui", *argv)
    assert result.status == 1 and message in result.err, result.err
    assert aws.client("cloudformation").list_stacks()["StackSummaries"] == []


@pytest.mark.parametrize("origin", ["ui.example.com", "https://ui.example.com/app", "ftp://x.example.com",
                                    "https://a.example.com,https://b.example.com"])
def test_an_allowed_origin_must_be_an_origin(capsys, origin):
    with pytest.raises(SystemExit) as exit_:
        run_cli(capsys, "ui", "--name", NAME, "--allowed-origin", origin)
    assert exit_.value.code == 2
    assert "give an origin such as https://ui.example.com" in capsys.readouterr().err
