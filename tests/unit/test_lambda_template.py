"""deploy/template.yaml: cfn-lint clean, and what it promises (least privilege, throttling, the Lambda's
settings) is what deploy/lambda_function.py reads."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads !Ref, !Sub, !GetAtt… as {"Ref": ...}-style dicts."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        return {name: value.split(".", 1) if suffix == "GetAtt" else value}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


_CloudFormationLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)


def cfn_lint(path: Path) -> subprocess.CompletedProcess:
    """The pinned cfn-lint of this venv (requirements/test.txt), not whichever one is on PATH."""
    return subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(path)], capture_output=True,
                          text=True, timeout=300)


def test_the_template_is_cfn_lint_clean():
    result = cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_does_catch_a_broken_template(tmp_path):
    """The clean result above means something: the same lint fails an invalid property and a bad reference."""
    broken = tmp_path / "broken.yaml"
    text = TEMPLATE.read_text().replace("Runtime: python3.13", "Runtime: python2.1")
    broken.write_text(text.replace("!GetAtt FunctionRole.Arn", "!GetAtt NoSuchRole.Arn"))
    result = cfn_lint(broken)
    assert result.returncode != 0
    assert "python2.1" in result.stdout and "NoSuchRole" in result.stdout, result.stdout


def test_the_role_may_invoke_only_the_one_endpoint_and_write_only_its_own_logs(template):
    role = template["Resources"]["FunctionRole"]["Properties"]
    assert "ManagedPolicyArns" not in role
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    actions = {action for s in statements for action in ([s["Action"]] if isinstance(s["Action"], str)
                                                            else s["Action"])}
    assert actions == {"sagemaker:InvokeEndpoint", "logs:CreateLogStream", "logs:PutLogEvents"}
    (invoke,) = [s for s in statements if s["Action"] == "sagemaker:InvokeEndpoint"]
    assert invoke["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint/${EndpointName}"}
    (logs,) = [s for s in statements if s is not invoke]
    assert logs["Resource"] == {"Fn::GetAtt": ["FunctionLogGroup", "Arn"]}
    assert all("*" not in str(s["Resource"]) for s in statements)


def test_the_endpoint_name_must_be_lower_case_as_its_arn_is(template):
    pattern = re.compile(template["Parameters"]["EndpointName"]["AllowedPattern"])
    assert pattern.match("segserve-prod") and not pattern.match("SegServe")


def _routes(template) -> dict[str, dict]:
    return {r["Properties"]["RouteKey"]: r["Properties"] for r in template["Resources"].values()
            if r["Type"] == "AWS::ApiGatewayV2::Route"}


def test_the_api_is_throttled_and_routes_the_page_the_invocations_and_preflight(template):
    resources = template["Resources"]
    settings = resources["Stage"]["Properties"]["DefaultRouteSettings"]
    assert settings == {"ThrottlingRateLimit": {"Ref": "ThrottleRateLimit"},
                        "ThrottlingBurstLimit": {"Ref": "ThrottleBurstLimit"}}
    assert sorted(_routes(template)) == ["GET /", "GET /{proxy+}", "OPTIONS /invocations", "POST /invocations"]


def test_every_route_goes_to_the_one_lambda_integration(template):
    resources = template["Resources"]
    (integration,) = [k for k, r in resources.items() if r["Type"] == "AWS::ApiGatewayV2::Integration"]
    target = {"Fn::Sub": f"integrations/${{{integration}}}"}
    assert all(r["Target"] == target and r["ApiId"] == {"Ref": "HttpApi"} for r in _routes(template).values())
    properties = resources[integration]["Properties"]
    assert properties["IntegrationType"] == "AWS_PROXY"
    assert properties["IntegrationUri"] == {"Fn::GetAtt": ["Function", "Arn"]}
    assert properties["PayloadFormatVersion"] == "2.0"  # the v2 event deploy/lambda_function.py reads
    assert resources["HttpApi"]["Properties"]["ProtocolType"] == "HTTP"


def test_the_stage_has_no_path_prefix_so_the_page_finds_invocations_beside_it(template):
    """The page posts to ../invocations relative to itself (web/js/settings.js): from the API's root that is
    /invocations only on the $default stage (a named stage puts /NAME/ before every path)."""
    stage = template["Resources"]["Stage"]["Properties"]
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    assert template["Outputs"]["PageUrl"]["Value"] == {
        "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"}
    assert "new URL('../invocations', window.location.href)" in (REPO / "web" / "js" / "settings.js").read_text()


def test_api_gateway_may_invoke_the_lambda_for_every_route_and_nothing_else(template):
    """Each route's execute-api ARN (api/stage/METHOD/path) matches a permission's SourceArn; IAM's * matches any
    characters, / included. A POST to a page file (no such route) matches none."""
    resources = template["Resources"]
    prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/"
    permissions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert all(p["FunctionName"] == {"Ref": "Function"} and p["Principal"] == "apigateway.amazonaws.com"
               and p["Action"] == "lambda:InvokeFunction" for p in permissions)
    sources = [p["SourceArn"]["Fn::Sub"] for p in permissions]
    assert all(source.startswith(prefix) for source in sources)

    def allowed(method: str, path: str) -> bool:
        arn = f"{prefix}$default/{method}{path}"
        return any(fnmatch.fnmatchcase(arn, source) for source in sources)

    requests = {"GET /": ("GET", "/"), "GET /{proxy+}": ("GET", "/js/main.js"),
                "OPTIONS /invocations": ("OPTIONS", "/invocations"), "POST /invocations": ("POST", "/invocations")}
    assert set(requests) == set(_routes(template))
    assert all(allowed(*request) for request in requests.values())
    assert not allowed("POST", "/js/main.js") and not allowed("PUT", "/")


def test_same_origin_needs_no_cors_by_default(template):
    assert template["Parameters"]["AllowedOrigins"]["Default"] == ""
    assert template["Resources"]["Function"]["Properties"]["Environment"]["Variables"]["ALLOWED_ORIGINS"] == {
        "Ref": "AllowedOrigins"}


def test_the_lambdas_handler_and_settings_are_the_ones_the_code_reads(template):
    from deploy import lambda_function

    function = template["Resources"]["Function"]["Properties"]
    module, name = function["Handler"].split(".")
    assert module == "lambda_function" and callable(getattr(lambda_function, name))
    variables = set(function["Environment"]["Variables"])
    read = set(re.findall(r'os\.environ(?:\.get)?[\[(]"([A-Z_]+)"', Path(lambda_function.__file__).read_text()))
    # UI_DIR only moves the page's files in tests: deployed, they are the zip's web/, the default.
    assert variables == read - {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL", "UI_DIR"}
    # The Lambda's own SageMaker timeout ends before the function's and API Gateway's do.
    assert float(function["Environment"]["Variables"]["READ_TIMEOUT_S"]) < function["Timeout"] <= 30


@pytest.mark.filterwarnings("ignore:Tried to parse AWS..ApiGatewayV2")  # moto: not in its CloudFormation
def test_the_stack_creates_the_lambda_from_the_packaged_zip_with_its_one_endpoint_policy(tmp_path):
    """CloudFormation (moto, in-process) creates the stack from the template and the zip deploy.lambda_package
    builds. moto's CloudFormation does not implement AWS::ApiGatewayV2::* (it skips them with a warning), so the
    API's own resources are proven by cfn-lint and the checks above, not here."""
    import ast
    import zipfile

    import boto3
    from moto.server import ThreadedMotoServer

    from deploy.lambda_package import build_zip

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        aws = dict(endpoint_url=f"http://{host}:{port}", region_name="us-east-1", aws_access_key_id="testing",
                   aws_secret_access_key="testing")
        s3 = boto3.client("s3", **aws)
        s3.create_bucket(Bucket="code")
        archive = build_zip(tmp_path / "ui-backend.zip")
        s3.upload_file(str(archive), "code", "ui-backend.zip")
        cloudformation = boto3.client("cloudformation", **aws)
        parameters = {"EndpointName": "segserve-prod", "AllowedOrigins": "https://ui.example.com",
                      "CodeS3Bucket": "code", "CodeS3Key": "ui-backend.zip"}
        cloudformation.create_stack(
            StackName="ui", TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
        assert cloudformation.describe_stacks(StackName="ui")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
        function = boto3.client("lambda", **aws).get_function(FunctionName="ui")
        configuration = function["Configuration"]
        assert configuration["Handler"] == "lambda_function.lambda_handler"
        assert configuration["Environment"]["Variables"]["ENDPOINT_NAME"] == "segserve-prod"
        assert configuration["Environment"]["Variables"]["ALLOWED_ORIGINS"] == "https://ui.example.com"
        with zipfile.ZipFile(archive) as packaged:
            assert {"lambda_function.py", "web/index.html"} <= set(packaged.namelist())
        assert configuration["CodeSize"] == archive.stat().st_size
        iam = boto3.client("iam", **aws)
        role = configuration["Role"].rsplit("/", 1)[1]
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
        (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):  # moto stores a CloudFormation inline policy as the Python repr of the dict
            document = ast.literal_eval(document)
        invoke = [s for s in document["Statement"] if s["Action"] == "sagemaker:InvokeEndpoint"]
        assert [s["Resource"] for s in invoke] == ["arn:aws:sagemaker:us-east-1:123456789012:endpoint/segserve-prod"]
    finally:
        server.stop()
