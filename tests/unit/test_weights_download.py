"""The official-weights downloader against a local HTTP server, and the checks on a user's own files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from segserve.contract.errors import WeightsError
from segserve.weights import official
from segserve.weights.bundle import MANIFEST, WeightsBundle
from segserve.weights.download import HASH_LOCK, download_file, fetch_official, use_local_files
from segserve.weights.official import OfficialHosts
from tests.processes import free_port


class FileServer:
    """Serves `files` (URL path → bytes) on 127.0.0.1, honours `Range: bytes=N-`, and logs every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-")) if self.headers["Range"] else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        # a short poll makes shutdown() return fast
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def hits(self, path: str) -> int:
        return sum(1 for requested, _ in self.requests if requested == path)


@pytest.fixture
def server():
    files = FileServer()
    files.thread.start()
    yield files
    files.httpd.shutdown()
    files.httpd.server_close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: more than one streamed chunk


def test_download_verifies_the_hash_and_leaves_only_the_file(server, tmp_path):
    server.files["/w.bin"] = PAYLOAD
    dest = download_file(f"{server.url}/w.bin", tmp_path / "w.bin", sha256(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in tmp_path.iterdir()] == ["w.bin"]


def test_hash_mismatch_raises_and_leaves_nothing_behind(server, tmp_path):
    server.files["/w.bin"] = PAYLOAD
    wrong = "0" * 64
    with pytest.raises(WeightsError) as error:
        download_file(f"{server.url}/w.bin", tmp_path / "w.bin", wrong, progress=False)
    assert wrong in error.value.message and sha256(PAYLOAD) in error.value.message
    assert "w.bin" in error.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_matches_is_not_downloaded_again(server, tmp_path):
    server.files["/w.bin"] = PAYLOAD
    for _ in range(2):
        download_file(f"{server.url}/w.bin", tmp_path / "w.bin", sha256(PAYLOAD), progress=False)
    assert server.hits("/w.bin") == 1


def test_a_partial_download_is_resumed_with_a_range_request(server, tmp_path):
    server.files["/w.bin"] = PAYLOAD
    (tmp_path / "w.bin.part").write_bytes(PAYLOAD[:1000])
    dest = download_file(f"{server.url}/w.bin", tmp_path / "w.bin", sha256(PAYLOAD), progress=False)
    assert server.requests == [("/w.bin", "bytes=1000-")]
    assert dest.read_bytes() == PAYLOAD


def test_http_error_names_the_url_and_status(server, tmp_path):
    with pytest.raises(WeightsError) as error:
        download_file(f"{server.url}/missing.bin", tmp_path / "w.bin", None, progress=False)
    assert f"{server.url}/missing.bin" in error.value.message and "404" in error.value.message
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_host_fails_fast_and_says_what_to_do_instead(tmp_path):
    started = time.monotonic()
    with pytest.raises(WeightsError) as error:
        download_file(f"http://127.0.0.1:{free_port()}/w.bin", tmp_path / "w.bin", None, progress=False)
    assert time.monotonic() - started < 5
    assert "Cannot reach 127.0.0.1" in error.value.message
    assert "WEIGHTS=tiny" in error.value.message and "--sam2-checkpoint" in error.value.message


def tiny_checkpoint_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "made.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    return path.read_bytes()


def serve_official(server: FileServer, tmp_path: Path) -> dict[str, bytes]:
    """Put fake official files where the catalogue expects them on `server`; return bundle path → bytes."""
    hosts = OfficialHosts(sam2=f"{server.url}/sam2", huggingface=f"{server.url}/hf")
    files = [official.sam2_checkpoint("small", hosts), *official.grounding_dino_files("tiny", hosts)]
    contents = {}
    for file in files:
        body = tiny_checkpoint_bytes(tmp_path) if file.path.endswith(".pt") else f"fake {file.path}".encode()
        server.files[file.url.removeprefix(server.url)] = body
        contents[file.path] = body
    return contents


@pytest.fixture
def published_as_served(monkeypatch):
    """Make the catalogue's published hashes those of the fake files the test server holds."""

    def publish(contents: dict[str, bytes]) -> None:
        monkeypatch.setitem(official.SAM2_SHA256, "small", sha256(contents["sam2.1_hiera_small.pt"]))
        weights = sha256(contents["grounding-dino-tiny/model.safetensors"])
        repo = dataclasses.replace(official.GROUNDING_DINO["tiny"], weights_sha256=weights)
        monkeypatch.setitem(official.GROUNDING_DINO, "tiny", repo)

    return publish


def test_fetch_official_writes_a_verified_bundle(server, tmp_path, published_as_served, caplog):
    contents = serve_official(server, tmp_path)
    published_as_served(contents)
    hosts = OfficialHosts(sam2=f"{server.url}/sam2", huggingface=f"{server.url}/hf")
    root = tmp_path / "bundle"

    bundle = fetch_official(root, "small", "tiny", progress=False, hosts=hosts)

    assert bundle == WeightsBundle.load(root)
    assert bundle.variant == "official" and bundle.sam2_config == "configs/sam2.1/sam2.1_hiera_s.yaml"
    assert bundle.grounding_dino_dir == root / "grounding-dino-tiny"
    for path, body in contents.items():
        assert (root / path).read_bytes() == body
    assert json.loads((root / MANIFEST).read_text())["sam2"]["checkpoint"] == "sam2.1_hiera_small.pt"
    assert "NOT verified against a published hash" in caplog.text
    assert "grounding-dino-tiny/config.json" in caplog.text
    assert "grounding-dino-tiny/model.safetensors" not in caplog.text  # it has a published hash


def test_fetch_official_enforces_the_real_published_checkpoint_hash(server, tmp_path):
    serve_official(server, tmp_path)
    hosts = OfficialHosts(sam2=f"{server.url}/sam2", huggingface=f"{server.url}/hf")
    with pytest.raises(WeightsError) as error:
        fetch_official(tmp_path / "bundle", "small", "tiny", progress=False, hosts=hosts)
    assert official.SAM2_SHA256["small"] in error.value.message
    assert not (tmp_path / "bundle" / "sam2.1_hiera_small.pt").exists()


def test_unpublished_hashes_are_pinned_on_first_use_and_then_enforced(server, tmp_path, published_as_served):
    contents = serve_official(server, tmp_path)
    published_as_served(contents)
    hosts = OfficialHosts(sam2=f"{server.url}/sam2", huggingface=f"{server.url}/hf")
    root = tmp_path / "bundle"

    fetch_official(root, "small", "tiny", progress=False, hosts=hosts)
    lock = json.loads((root / HASH_LOCK).read_text())
    unpublished = {p: sha256(b) for p, b in contents.items() if not p.endswith((".pt", ".safetensors"))}
    assert lock == unpublished

    requests_after_first_run = len(server.requests)
    fetch_official(root, "small", "tiny", progress=False, hosts=hosts)
    assert len(server.requests) == requests_after_first_run  # all cached and verified, nothing fetched

    (root / "grounding-dino-tiny/vocab.txt").write_text("[PAD]\nevil\n")
    with pytest.raises(WeightsError, match=r"vocab\.txt has SHA-256 .*changed after it was downloaded"):
        fetch_official(root, "small", "tiny", progress=False, hosts=hosts)


def test_unknown_sizes_are_rejected_with_the_choices(tmp_path):
    with pytest.raises(WeightsError, match="base_plus"):
        fetch_official(tmp_path, "huge", "tiny", progress=False)
    with pytest.raises(WeightsError, match="tiny, base"):
        fetch_official(tmp_path, "small", "huge", progress=False)


def write_user_files(folder: Path) -> tuple[Path, Path]:
    checkpoint = folder / "sam2.1_hiera_tiny.pt"
    folder.mkdir(parents=True)
    torch.save({"model": {"w": torch.zeros(2)}}, checkpoint)
    grounding_dino = folder / "gdino"
    grounding_dino.mkdir()
    (grounding_dino / "config.json").write_text(json.dumps({"model_type": "grounding-dino"}))
    for name in ("model.safetensors", "processor_config.json", "tokenizer_config.json", "tokenizer.json"):
        (grounding_dino / name).write_text("{}")
    return checkpoint, grounding_dino


def test_use_local_files_points_a_manifest_at_the_files_in_place(tmp_path):
    checkpoint, grounding_dino = write_user_files(tmp_path / "mine")
    root = tmp_path / "bundle"

    bundle = use_local_files(root, checkpoint, grounding_dino)

    assert bundle == WeightsBundle("local", checkpoint, "configs/sam2.1/sam2.1_hiera_t.yaml", grounding_dino)
    assert WeightsBundle.load(root) == bundle
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["sam2"]["checkpoint"] == str(checkpoint) and manifest["grounding_dino"] == str(grounding_dino)
    assert sorted(p.name for p in root.iterdir()) == [MANIFEST]  # nothing copied


def test_use_local_files_needs_meta_s_file_name_to_pick_the_config(tmp_path):
    checkpoint, grounding_dino = write_user_files(tmp_path / "mine")
    renamed = checkpoint.rename(checkpoint.with_name("my_sam.pt"))
    with pytest.raises(WeightsError, match="keep Meta's file name"):
        use_local_files(tmp_path / "bundle", renamed, grounding_dino)


# Each breaks one thing in a good pair of files (checkpoint, GroundingDINO folder); the message must say what.
BREAKAGES = {
    "no checkpoint": (lambda ck, gd: ck.unlink(), "does not exist"),
    "not a torch file": (lambda ck, gd: ck.write_bytes(b"not a torch file"), "not a loadable PyTorch checkpoint"),
    "truncated zip": (lambda ck, gd: ck.write_bytes(ck.read_bytes()[:200]), "not a loadable PyTorch checkpoint"),
    "no model key": (
        lambda ck, gd: torch.save({"state_dict": {}}, ck), "dict with a 'model' key, found ['state_dict']"
    ),
    "not a dict": (lambda ck, gd: torch.save(torch.zeros(2), ck), "dict with a 'model' key, found Tensor"),
    "no config.json": (lambda ck, gd: (gd / "config.json").unlink(), "has no config.json"),
    "other model": (
        lambda ck, gd: (gd / "config.json").write_text('{"model_type": "owlv2"}'),
        "model_type 'owlv2', expected 'grounding-dino'",
    ),
    "broken config.json": (lambda ck, gd: (gd / "config.json").write_text("[1, 2"), "is not a JSON object"),
    "no vocabulary": (
        lambda ck, gd: (gd / "tokenizer.json").unlink(), "tokenizer vocabulary (tokenizer.json or vocab.txt)"
    ),
    "no tokenizer config": (
        lambda ck, gd: (gd / "tokenizer_config.json").unlink(), "tokenizer config (tokenizer_config.json)"
    ),
    "no processor config": (lambda ck, gd: (gd / "processor_config.json").unlink(), "image processor config"),
    "no weights": (
        lambda ck, gd: (gd / "model.safetensors").unlink(), "weights (model.safetensors or pytorch_model.bin)"
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_use_local_files_explains_what_is_wrong(tmp_path, breakage):
    checkpoint, grounding_dino = write_user_files(tmp_path / "mine")
    breaker, message = BREAKAGES[breakage]
    breaker(checkpoint, grounding_dino)
    with pytest.raises(WeightsError) as error:
        use_local_files(tmp_path / "bundle", checkpoint, grounding_dino)
    assert message in error.value.message
    assert not (tmp_path / "bundle" / MANIFEST).exists()
