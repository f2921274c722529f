"""deploy/lambda_package.py: the Lambda zip holds the handler, the client and exactly the page's files, and is the
same bytes for the same files (so `segserve-deploy ui` names it by its hash and a re-run is a no-op)."""

from __future__ import annotations

import re
import zipfile

from deploy import lambda_package
from deploy.lambda_package import REPO, build_zip, digest


def test_the_zip_holds_the_handler_the_client_and_the_pages_files_only(tmp_path):
    with zipfile.ZipFile(build_zip(tmp_path / "ui.zip")) as archive:
        names = set(archive.namelist())
        page = archive.read("web/index.html").decode()
    web = REPO / "web"
    page_files = {f"web/{p.relative_to(web).as_posix()}" for p in web.rglob("*")
                  if p.is_file() and p.suffix not in (".md", ".json")}
    assert {n for n in names if n.startswith("web/")} == page_files
    assert {"web/README.md", "web/package.json"}.isdisjoint(names)
    assert {"lambda_function.py", "segserve/__init__.py", "segserve/client/endpoint.py"} <= names
    assert not [n for n in names if "standin" in n or "mask_files" in n]  # numpy and the stand-in stay out
    # Every file the page links to is in the zip, beside it.
    linked = set(re.findall(r'(?:href|src)="([^":]+)"', page))
    assert linked and {f"web/{link}" for link in linked} <= names


def test_the_same_files_give_the_same_bytes(tmp_path):
    first, second = build_zip(tmp_path / "a.zip"), build_zip(tmp_path / "b.zip")
    (REPO / "web" / "index.html").touch()  # a newer modification time changes nothing
    third = build_zip(tmp_path / "c.zip")
    assert digest(first) == digest(second) == digest(third)
    with zipfile.ZipFile(first) as archive:
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
        assert all((info.external_attr >> 16) & 0o444 == 0o444 for info in archive.infolist())


def test_other_files_give_another_digest(tmp_path, monkeypatch):
    before = digest(build_zip(tmp_path / "a.zip"))
    monkeypatch.setattr(lambda_package, "PAGE_SUFFIXES", (*lambda_package.PAGE_SUFFIXES, ".md"))
    assert digest(build_zip(tmp_path / "b.zip")) != before


def test_the_command_line_writes_the_zip_and_prints_its_path(tmp_path, capsys):
    assert lambda_package.main([str(tmp_path / "out" / "ui.zip")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "ui.zip")
    assert lambda_package.main([]) == 2 and "python -m deploy.lambda_package" in capsys.readouterr().err
