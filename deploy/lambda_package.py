"""The UI backend's Lambda zip: deploy/lambda_function.py and the segserve client, nothing else.

    python -m deploy.lambda_package build/ui-backend.zip

The client needs only boto3, which Lambda's Python runtime provides, so the zip is a few kilobytes and
needs no build step (deploy/template.yaml's CodeS3Bucket/CodeS3Key name where it was uploaded).
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLIENT = REPO / "src" / "segserve" / "client"
# The client modules the handler imports; mask_files (numpy) and the stand-in stay out.
CLIENT_MODULES = ("__init__.py", "endpoint.py", "errors.py", "payloads.py")


def build_zip(out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(REPO / "deploy" / "lambda_function.py", "lambda_function.py")
        archive.write(REPO / "src" / "segserve" / "__init__.py", "segserve/__init__.py")
        for name in CLIENT_MODULES:
            archive.write(CLIENT / name, f"segserve/client/{name}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    print(build_zip(Path(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
