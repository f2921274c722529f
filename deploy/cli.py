"""segserve-deploy: build and push the image, deploy, update, serve the web UI for, batch-transform and tear down a
segserve endpoint."""

from __future__ import annotations

import argparse
import os
import sys

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from deploy import down, image, invoke, transform, ui, up
from deploy.aws import DeployError

# Each module adds its subcommand with register(commands, common) and sets `run` (args → exit status).
COMMANDS = (image, up, ui, invoke, transform, down)

EPILOG = """typical session:
  segserve-deploy image --repository segserve                      # prints the image URI
  segserve-deploy up --name segserve --image-uri URI --role-arn ARN --model-data model_store --bucket BUCKET
  segserve-deploy up --name segserve ... --instances 2             # zero-downtime update
  segserve-deploy ui --name segserve                               # the web UI on API Gateway; prints its URL
  segserve-deploy invoke --name segserve --action sam2 --image photo.jpg --x 200 --y 150 --out masks/
  segserve-deploy down --name segserve

Every AWS call honours AWS_ENDPOINT_URL (e.g. a moto server or LocalStack) and the usual AWS_* settings.
"""


def _aws_options(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--region", default=default, help="AWS region (default: the profile's or AWS_DEFAULT_REGION)")
    parser.add_argument("--profile", default=default, help="AWS profile name (default: AWS_PROFILE or 'default')")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segserve-deploy", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _aws_options(parser, None)
    # The same options after the subcommand; SUPPRESS keeps a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    _aws_options(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.run(args)
        sys.stdout.flush()  # inside the try: a reader gone early fails here, not at exit
        return status
    except BrokenPipeError:
        # The reader of stdout is gone (`| head`): stop quietly, as Unix tools do. stdout goes to /dev/null so
        # that Python's own flush at exit finds nothing to fail on (the Python docs' recipe, signal module).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except DeployError as exc:
        print(f"segserve-deploy {args.command}: {exc}", file=sys.stderr)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = " ".join(str(error.get("Message", "")).split())[:300]  # one line, even for an HTML error page
        print(f"segserve-deploy {args.command}: AWS refused {exc.operation_name}: "
              f"{error.get('Code', '?')}: {message}", file=sys.stderr)
    except NoRegionError:
        print(f"segserve-deploy {args.command}: no AWS region: give --region or set AWS_DEFAULT_REGION",
              file=sys.stderr)
    except NoCredentialsError:
        print(f"segserve-deploy {args.command}: no AWS credentials: configure a profile (aws configure) or set "
              "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", file=sys.stderr)
    except BotoCoreError as exc:
        print(f"segserve-deploy {args.command}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"segserve-deploy {args.command}: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
