"""The web UI's Lambda zip: deploy/lambda_function.py, the segserve client and the page's files, nothing else.

    python -m deploy.lambda_package build/ui-backend.zip

The client needs only boto3, which Lambda's Python runtime provides, so the zip is small and needs no build step.
The page (web/: index.html, app.css, the images, js/) goes under web/ beside lambda_function.py, which serves it;
web/'s README and package.json (for node's unit tests) stay out. The zip is the same bytes for the same files
(fixed timestamps, sorted entries), so `segserve-deploy ui` can name it by its hash and a re-run changes nothing.
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

from deploy.lambda_function import UI_CONTENT_TYPES

REPO = Path(__file__).resolve().parent.parent
CLIENT = REPO / "src" / "segserve" / "client"
WEB = REPO / "web"
# The client modules the handler imports; mask_files (numpy) and the stand-in stay out.
CLIENT_MODULES = ("__init__.py", "endpoint.py", "errors.py", "payloads.py")
# The page's files: exactly the types the Lambda serves from web/.
PAGE_SUFFIXES = tuple(UI_CONTENT_TYPES)
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold


def contents() -> dict[str, Path]:
    """The zip's entry names → the repo's files."""
    entries = {"lambda_function.py": REPO / "deploy" / "lambda_function.py",
               "segserve/__init__.py": REPO / "src" / "segserve" / "__init__.py"}
    entries.update({f"segserve/client/{name}": CLIENT / name for name in CLIENT_MODULES})
    entries.update({f"web/{path.relative_to(WEB).as_posix()}": path for path in WEB.rglob("*")
                    if path.is_file() and path.suffix in PAGE_SUFFIXES})
    return entries


def build_zip(out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in sorted(contents().items()):
            entry = zipfile.ZipInfo(name, _EPOCH)
            entry.external_attr = 0o644 << 16  # readable by the Lambda runtime's user
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes())
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    print(build_zip(Path(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
