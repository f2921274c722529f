"""`segserve-deploy invoke`: call an endpoint's langsam, sam2, sam3 or ping action and print the JSON answer, or write
the masks as PNG files (--out). The client is segserve.client, the one the UI's Lambda and the tests use.

Against `make serve` on this machine: start `segserve-runtime-standin` and set
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:8090 (docs/API.md, "Local SageMaker runtime").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deploy.aws import DeployError, session
from segserve.client import EndpointError, EndpointUnreachable, SegmentationClient, runtime_client
from segserve.client.payloads import langsam_request, ping_request, sam2_request, sam3_request

EPILOG = """examples:
  segserve-deploy invoke --name segserve --action ping
  segserve-deploy invoke --name segserve --action langsam --image photo.jpg --text "black jeans" --out masks/
  segserve-deploy invoke --name segserve --action sam2 --image s3://bucket/photo.jpg --x 200 --y 150 --single-mask
  segserve-deploy invoke --name segserve --action sam2 --image photo.jpg --point 200,150 --negative 420,300
  segserve-deploy invoke --name segserve --action sam2 --image-id ID_FROM_AN_ANSWER --box 10,20,200,220
  segserve-deploy invoke --name segserve --action sam3 --image photo.jpg --text "yellow school bus" --out masks/
  segserve-deploy invoke --name segserve --action sam3 --image-id ID --exemplar 10,20,200,220 --not-like 300,40,380,90
  segserve-deploy invoke --name segserve --action sam3 --image-id ID --x 200 --y 150   # a click, SAM 3's tracker
  segserve-deploy invoke --name segserve-async --action langsam --image photo.jpg --text cat \\
      --async --input-location s3://bucket/async/in/0001.json --wait
"""


def register(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "invoke", parents=[common], help="call the endpoint (langsam, sam2, sam3, ping); print JSON or write mask PNGs",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, help="the endpoint name (as given to `up`)")
    parser.add_argument("--action", required=True, choices=("langsam", "sam2", "sam3", "ping"))
    image = parser.add_argument_group("the image (langsam, sam2, sam3): one of")
    image.add_argument("--image", metavar="PATH|URL", help="a local file, or an http(s):// or s3:// URL")
    image.add_argument("--image-id", metavar="ID", help="image.id of an earlier answer (the endpoint's cache)")
    prompts = parser.add_argument_group("prompts")
    prompts.add_argument("--text", help="langsam, sam3: what to find, e.g. 'black jeans. white shirt'")
    prompts.add_argument("--exemplar", action="append", type=_numbers(4), default=[], metavar="X0,Y0,X1,Y1",
                         help="sam3: an example box, 'more like this' (repeatable)")
    prompts.add_argument("--not-like", action="append", type=_numbers(4), default=[], metavar="X0,Y0,X1,Y1",
                         help="sam3: a negative example box, 'not this' (repeatable)")
    prompts.add_argument("--x", type=float, help="sam2, sam3: one positive point (with --y)")
    prompts.add_argument("--y", type=float)
    prompts.add_argument("--point", action="append", type=_numbers(2), default=[], metavar="X,Y",
                         help="sam2: a positive point (repeatable)")
    prompts.add_argument("--negative", action="append", type=_numbers(2), default=[], metavar="X,Y",
                         help="sam2: a negative point (repeatable)")
    prompts.add_argument("--box", type=_numbers(4), metavar="X0,Y0,X1,Y1", help="sam2: a box prompt")
    options = parser.add_argument_group("options")
    options.add_argument("--single-mask", action="store_true", help="sam2: one mask instead of three candidates")
    options.add_argument("--max-detections", type=int, metavar="N", help="langsam, sam3: at most this many objects")
    options.add_argument("--score-threshold", type=float, metavar="T", help="sam3: detection score threshold")
    options.add_argument("--box-threshold", type=float, metavar="T", help="langsam: detector box score threshold")
    options.add_argument("--text-threshold", type=float, metavar="T", help="langsam: detector text score threshold")
    options.add_argument("--mask-format", choices=("rle", "png", "polygons"), help="default rle")
    options.add_argument("--return-images", action="store_true", help="also the original, overlay and mask_only PNGs")
    options.add_argument("--session", metavar="NEW_SESSION|ID",
                         help="stateful session: NEW_SESSION opens one (its id is printed on stderr)")
    options.add_argument("--out", type=Path, metavar="DIR",
                         help="write <action>-<i>.png per mask (and renderings) and <action>.json, not JSON on stdout")
    asynchronous = parser.add_argument_group("asynchronous endpoints")
    asynchronous.add_argument("--async", dest="use_async", action="store_true",
                              help="InvokeEndpointAsync: upload the request to --input-location first")
    asynchronous.add_argument("--input-location", metavar="s3://BUCKET/KEY", help="where to upload the request")
    asynchronous.add_argument("--wait", action="store_true", help="--async: wait for the answer in S3")
    asynchronous.add_argument("--wait-timeout", type=float, default=900.0, metavar="S", help="seconds (default %(default)g)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    request = build_request(args)
    if args.use_async and not (args.input_location or "").startswith("s3://"):
        raise DeployError("--async needs --input-location s3://BUCKET/KEY (the request is uploaded there)")
    aws = session(args)
    client = SegmentationClient(args.name, runtime=runtime_client(session=aws), s3=aws.client("s3"))
    try:
        if args.use_async:
            invocation = client.invoke_async(request, args.input_location)
            print(f"inference {invocation.inference_id}: answer at {invocation.output_location}", file=sys.stderr)
            if not args.wait:
                print(json.dumps({"InferenceId": invocation.inference_id, "OutputLocation":
                                  invocation.output_location, "FailureLocation": invocation.failure_location}))
                return 0
            answer = client.wait_async(invocation, timeout_s=args.wait_timeout)
        else:
            answer = client.invoke(request, session_id=args.session)
    except EndpointError as exc:
        raise DeployError(f"the endpoint answered {exc}") from None
    except EndpointUnreachable as exc:
        raise DeployError(f"the endpoint could not be reached: {exc}") from None
    if answer.session_id:
        print(f"session {answer.session_id} (expires {answer.session_expires})", file=sys.stderr)
    if args.out and args.action != "ping":
        from segserve.client.mask_files import write_masks  # numpy and pycocotools, only when writing files

        for path in write_masks(answer.body, args.out, stem=args.action):
            print(path)
    else:
        print(json.dumps(answer.body, indent=2))
    return 0


def build_request(args: argparse.Namespace) -> dict:
    try:
        if args.action == "ping":
            return ping_request()
        common = {"mask_format": args.mask_format, "return_images": True if args.return_images else None}
        if args.action == "langsam":
            if not args.text:
                raise DeployError("--action langsam needs --text")
            return langsam_request(args.text, _image(args), args.image_id, max_detections=args.max_detections,
                                   box_threshold=args.box_threshold, text_threshold=args.text_threshold, **common)
        points = args.point + args.negative
        labels = [1] * len(args.point) + [0] * len(args.negative)
        if args.action == "sam3":
            exemplars = args.exemplar + args.not_like
            return sam3_request(
                _image(args), args.image_id, text_prompt=args.text, exemplar_boxes=exemplars or None,
                exemplar_labels=[1] * len(args.exemplar) + [0] * len(args.not_like) if exemplars else None,
                x=args.x, y=args.y, points=points or None, labels=labels or None, box=args.box,
                multimask=False if args.single_mask else None, max_detections=args.max_detections,
                score_threshold=args.score_threshold, **common)
        return sam2_request(_image(args), args.image_id, x=args.x, y=args.y, points=points or None,
                            labels=labels or None, box=args.box, multimask=False if args.single_mask else None,
                            **common)
    except ValueError as exc:
        raise DeployError(str(exc)) from None


def _image(args: argparse.Namespace) -> str | Path | None:
    if args.image is None or args.image.lower().startswith(("http://", "https://", "s3://")):
        return args.image
    return Path(args.image)


def _numbers(count: int):
    def parse(text: str) -> list[float]:
        try:
            values = [float(part) for part in text.split(",")]
        except ValueError:
            values = []
        if len(values) != count:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {count} comma-separated numbers")
        return values

    parse.__name__ = f"{count} numbers"
    return parse
