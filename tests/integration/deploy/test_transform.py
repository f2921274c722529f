"""`transform` against moto: the job's split and batch strategy per content type, the default attributes reaching
the container's environment, and the summary of failed records read back from the .out files."""

from __future__ import annotations

import json

from tests.integration.deploy.cli import BUCKET, run_cli, up_args

NAME = "seg-batch"


def _only_job(sagemaker) -> dict:
    (summary,) = sagemaker.list_transform_jobs()["TransformJobSummaries"]
    return sagemaker.describe_transform_job(TransformJobName=summary["TransformJobName"])


def _deployed_model(sagemaker) -> str:
    config = sagemaker.describe_endpoint(EndpointName=NAME)["EndpointConfigName"]
    return sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]["ModelName"]


def test_json_lines_job_splits_at_lines_and_sends_many_per_request(aws, capsys, model_store):
    assert run_cli(capsys, *up_args(NAME, str(model_store))).status == 0
    result = run_cli(capsys, "transform", "--name", NAME, "--input", f"s3://{BUCKET}/in/",
                     "--output", f"s3://{BUCKET}/out/")
    assert result.status == 0, result.err
    sagemaker = aws.client("sagemaker")
    job = _only_job(sagemaker)
    assert job["TransformJobName"] in result.out
    assert job["ModelName"] == _deployed_model(sagemaker)
    assert job["BatchStrategy"] == "MultiRecord"
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformInput"]["ContentType"] == "application/jsonlines"
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/in/"
    assert job["TransformOutput"]["AssembleWith"] == "Line"
    assert job["TransformOutput"]["S3OutputPath"] == f"s3://{BUCKET}/out/"
    assert job["Environment"] == {"SEGSERVE_BATCH_TIMEOUT_S": "600"}
    assert job["ModelClientConfig"]["InvocationsTimeoutInSeconds"] == 600


def test_image_job_sends_one_image_per_request_with_the_default_attributes(aws, capsys, model_store):
    assert run_cli(capsys, *up_args(NAME, str(model_store))).status == 0
    attributes = "action=langsam;text_prompt=person"
    result = run_cli(capsys, "transform", "--name", NAME, "--input", f"s3://{BUCKET}/photos/", "--output",
                     f"s3://{BUCKET}/masks/", "--content-type", "image/jpeg", "--attributes", attributes)
    assert result.status == 0, result.err
    job = _only_job(aws.client("sagemaker"))
    assert job["BatchStrategy"] == "SingleRecord"
    assert job["TransformInput"]["SplitType"] == "None"
    assert job["TransformInput"]["ContentType"] == "image/jpeg"
    assert job["Environment"]["SEGSERVE_DEFAULT_ATTRIBUTES"] == attributes


def test_images_without_attributes_are_refused_before_a_job_starts(aws, capsys, model_store):
    assert run_cli(capsys, *up_args(NAME, str(model_store))).status == 0
    result = run_cli(capsys, "transform", "--name", NAME, "--input", f"s3://{BUCKET}/p/", "--output",
                     f"s3://{BUCKET}/m/", "--content-type", "image/png")
    assert result.status == 1 and "raw images need --attributes" in result.err
    assert aws.client("sagemaker").list_transform_jobs()["TransformJobSummaries"] == []


def test_wait_summarises_the_failed_records_of_the_out_files(aws, capsys, model_store):
    """moto completes a job at once and writes nothing: the .out files are what the container would have
    answered (one line per record, errors with their status, docs/API.md §5)."""
    assert run_cli(capsys, *up_args(NAME, str(model_store))).status == 0
    s3 = aws.client("s3")
    ok = json.dumps({"action": "langsam", "masks": []})
    bad = json.dumps({"error": {"code": "invalid_request", "message": "action is missing", "status": 400}})
    s3.put_object(Bucket=BUCKET, Key="out/a.jsonl.out", Body=f"{ok}\n{bad}\n{ok}\n".encode())
    s3.put_object(Bucket=BUCKET, Key="out/b.jsonl.out", Body=f"{ok}\n".encode())
    s3.put_object(Bucket=BUCKET, Key="out/_SUCCESS", Body=b"{\"error\": \"not an answer file\"}")
    result = run_cli(capsys, "transform", "--name", NAME, "--input", f"s3://{BUCKET}/in/",
                     "--output", f"s3://{BUCKET}/out/", "--wait")
    assert result.status == 2, result.err
    assert "Completed: 4 records, 1 failed" in result.out
    assert "out/a.jsonl.out:2: 400 invalid_request: action is missing" in result.out


def test_wait_with_every_record_answered_exits_0(aws, capsys, model_store):
    assert run_cli(capsys, *up_args(NAME, str(model_store))).status == 0
    aws.client("s3").put_object(Bucket=BUCKET, Key="out/a.jsonl.out", Body=b'{"masks": []}\n')
    result = run_cli(capsys, "transform", "--name", NAME, "--input", f"s3://{BUCKET}/in/",
                     "--output", f"s3://{BUCKET}/out/", "--wait")
    assert result.status == 0, result.err
    assert "Completed: 1 record, 0 failed" in result.out


def test_transform_without_a_deployment_says_to_run_up(aws, capsys):
    result = run_cli(capsys, "transform", "--name", NAME, "--input", f"s3://{BUCKET}/in/",
                     "--output", f"s3://{BUCKET}/out/")
    assert result.status == 1 and f"no model for {NAME}: run `segserve-deploy up" in result.err
