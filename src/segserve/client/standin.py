"""A local stand-in for the SageMaker runtime API, in front of a container's /invocations (e.g. `make serve`).

    segserve-runtime-standin --container-url http://127.0.0.1:8080          # listens on 127.0.0.1:8090
    export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:8090
    segserve-deploy invoke --name segserve --action ping                      # or any boto3 code

It answers boto3's InvokeEndpoint (`POST /endpoints/<name>/invocations`) as SageMaker does, per botocore's
sagemaker-runtime service model: the body, Content-Type, Accept, custom attributes and session id go to the
container; a 2xx comes back with its body and the container's session and custom-attributes headers; any
other status becomes SageMaker's ModelError (HTTP 424, `x-amzn-ErrorType: ModelError`, OriginalStatusCode,
OriginalMessage), so boto3 raises exactly what it raises against AWS. A container that does not answer
within 60 s (or at all) gives a ModelError with status 0, as SageMaker's invocation timeout does. With
`--async-output s3://…` it also serves InvokeEndpointAsync: the request is read from its InputLocation and the
answer written to S3 (S3 as boto3 finds it: AWS_ENDPOINT_URL_S3 points it at a local S3).

Requests are not authenticated (no SigV4 check): it listens on 127.0.0.1 only unless told otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

log = logging.getLogger("segserve.standin")

ACCOUNT = "000000000000"
MAX_BODY_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's Body limit in botocore's model (6,291,456 bytes)
INVOCATION_TIMEOUT_S = 60.0  # SageMaker's real-time limit
# What SageMaker passes from InvokeEndpoint to the container, and what it passes back on a 2xx.
FORWARDED_REQUEST_HEADERS = ("Content-Type", "Accept", "X-Amzn-SageMaker-Custom-Attributes",
                             "X-Amzn-SageMaker-Session-Id")
RETURNED_HEADERS = ("X-Amzn-SageMaker-Custom-Attributes", "X-Amzn-SageMaker-New-Session-Id",
                    "X-Amzn-SageMaker-Closed-Session-Id")


@dataclass(frozen=True)
class StandInConfig:
    container_url: str = "http://127.0.0.1:8080"
    endpoint_names: tuple[str, ...] = ("segserve",)
    async_output: str | None = None  # s3://bucket/prefix for InvokeEndpointAsync answers
    timeout_s: float = INVOCATION_TIMEOUT_S
    region: str = "us-east-1"


@dataclass(frozen=True)
class ContainerAnswer:
    status: int  # 0: no answer
    body: bytes
    headers: dict[str, str]


def call_container(config: StandInConfig, body: bytes, headers: dict[str, str]) -> ContainerAnswer:
    """POST /invocations on the container; never raises (a failure is status 0 with the reason as its body)."""
    url = urlsplit(config.container_url)
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=config.timeout_s)
    try:
        connection.request("POST", (url.path.rstrip("/") or "") + "/invocations", body=body, headers=headers)
        reply = connection.getresponse()
        return ContainerAnswer(reply.status, reply.read(), {k.lower(): v for k, v in reply.getheaders()})
    except TimeoutError:
        return ContainerAnswer(0, b"Your invocation timed out while waiting for a response from container primary.",
                               {})
    except OSError as exc:
        return ContainerAnswer(0, f"The container at {config.container_url} did not answer: {exc}".encode(), {})
    finally:
        connection.close()


class StandInHandler(BaseHTTPRequestHandler):
    server: StandInServer
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        started = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read
            return self._aws_error(400, "ValidationError", f"Request payload of {length} bytes is over "
                                   f"InvokeEndpoint's limit of {MAX_BODY_BYTES} bytes.")
        body = self.rfile.read(length)
        parts = urlsplit(self.path).path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "endpoints" or parts[2] not in ("invocations", "async-invocations"):
            return self._aws_error(404, "UnknownOperationException", f"no operation at {self.path}")
        name = unquote(parts[1])
        if name not in self.server.config.endpoint_names:
            return self._aws_error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.")
        if parts[2] == "async-invocations":
            self._invoke_async(name)
        else:
            self._invoke(name, body)
        log.info("POST %s -> %s (%.0f ms)", self.path, self._status, (time.monotonic() - started) * 1000)

    def _invoke(self, name: str, body: bytes) -> None:
        headers = {key: self.headers[key] for key in FORWARDED_REQUEST_HEADERS if self.headers.get(key) is not None}
        answer = call_container(self.server.config, body, headers)
        if 200 <= answer.status < 300:
            passed = {key: answer.headers[key.lower()] for key in RETURNED_HEADERS if key.lower() in answer.headers}
            passed["x-Amzn-Invoked-Production-Variant"] = "AllTraffic"
            return self._send(200, answer.body, answer.headers.get("content-type", "application/json"), passed)
        self._model_error(name, answer)

    def _model_error(self, name: str, answer: ContainerAnswer) -> None:
        text = answer.body.decode("utf-8", errors="replace")
        side = "client" if 400 <= answer.status < 500 else "server"
        error = {
            "ErrorCode": f"{side.upper()}_ERROR_FROM_MODEL",
            "LogStreamArn": f"arn:aws:logs:{self.server.config.region}:{ACCOUNT}:log-group:/aws/sagemaker/"
                            f"Endpoints/{name}",
            "Message": f'Received {side} error ({answer.status}) from primary with message "{text}". See the '
                       f"container's log (TorchServe's logs/) for more information.",
            "OriginalMessage": text,
            "OriginalStatusCode": answer.status,
        }
        self._aws_error(424, "ModelError", body=error)

    def _invoke_async(self, name: str) -> None:
        config = self.server.config
        if not config.async_output:
            return self._aws_error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} is not an "
                                   "asynchronous endpoint (start the stand-in with --async-output s3://...).")
        input_location = self.headers.get("X-Amzn-SageMaker-InputLocation")
        if not input_location or not input_location.startswith("s3://"):
            return self._aws_error(400, "ValidationError", "InputLocation must be an s3:// URL.")
        inference_id = self.headers.get("X-Amzn-SageMaker-Inference-Id") or str(uuid.uuid4())
        key = str(uuid.uuid4())
        output = f"{config.async_output.rstrip('/')}/{key}.out"
        failure = f"{config.async_output.rstrip('/')}/failures/{key}-error.out"
        headers = {"Content-Type": self.headers.get("X-Amzn-SageMaker-Content-Type") or "application/json",
                   "Accept": self.headers.get("X-Amzn-SageMaker-Accept") or "application/json"}
        if self.headers.get("X-Amzn-SageMaker-Custom-Attributes"):
            headers["X-Amzn-SageMaker-Custom-Attributes"] = self.headers["X-Amzn-SageMaker-Custom-Attributes"]
        threading.Thread(target=self.server.run_async, args=(input_location, headers, output, failure),
                         daemon=True).start()
        self._send(202, json.dumps({"InferenceId": inference_id}).encode(), "application/json",
                   {"X-Amzn-SageMaker-OutputLocation": output, "X-Amzn-SageMaker-FailureLocation": failure})

    def _aws_error(self, status: int, code: str, message: str = "", body: dict | None = None) -> None:
        self._send(status, json.dumps(body or {"message": message}).encode(), "application/json",
                   {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.sagemaker/"})

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # one line per call is logged by do_POST instead
        pass


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], config: StandInConfig):
        super().__init__(address, StandInHandler)
        self.config = config

    def handle_error(self, request, client_address) -> None:
        """A caller that gave up (its read timeout) before the answer: one line, not a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError)):
            log.info("%s:%s went away before its answer", *client_address[:2])
        else:
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def run_async(self, input_location: str, headers: dict, output: str, failure: str) -> None:
        """An async invocation: the request from S3, the container's answer to `output` (2xx) or `failure`."""
        import boto3

        from segserve.client.endpoint import split_s3_url

        s3 = boto3.client("s3", region_name=self.config.region)
        try:
            bucket, key = split_s3_url(input_location)
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            answer = call_container(self.config, body, headers)
        except Exception as exc:  # noqa: BLE001 - any failure is reported where the client looks for it
            answer = ContainerAnswer(0, f"could not read {input_location}: {exc}".encode(), {})
        bucket, key = split_s3_url(output if 200 <= answer.status < 300 else failure)
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=answer.body,
                          ContentType=answer.headers.get("content-type", "application/json"))
        except Exception:  # noqa: BLE001 - nowhere left to report it but the log
            log.exception("async answer for %s could not be written to s3://%s/%s", input_location, bucket, key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="segserve-runtime-standin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--container-url", default="http://127.0.0.1:8080",
                        help="the container whose /invocations answers (default: make serve's, %(default)s)")
    parser.add_argument("--endpoint-name", action="append", dest="endpoint_names", metavar="NAME",
                        help="an endpoint name to answer for (repeatable; default: segserve); others get "
                             "SageMaker's 'not found' ValidationError")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on (default: %(default)s; 0: any)")
    parser.add_argument("--async-output", metavar="S3_URL",
                        help="s3://bucket/prefix: serve InvokeEndpointAsync, writing answers there")
    parser.add_argument("--timeout", type=float, default=INVOCATION_TIMEOUT_S,
                        help="seconds to wait for the container (default: SageMaker's %(default)g)")
    args = parser.parse_args(argv)
    if args.async_output and not args.async_output.startswith("s3://"):
        parser.error("--async-output must be an s3:// URL")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    config = StandInConfig(args.container_url, tuple(args.endpoint_names or ("segserve",)), args.async_output,
                           args.timeout)
    server = StandInServer((args.host, args.port), config)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C: close the socket, exit 0
    print(f"SageMaker runtime stand-in on {server.url} -> {config.container_url}/invocations "
          f"(endpoints: {', '.join(config.endpoint_names)})\n"
          f"  export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
