"""`segserve-deploy invoke` without an endpoint: options → the request body, and the mistakes it refuses."""

from __future__ import annotations

import base64

import pytest

from deploy.cli import build_parser, main
from deploy.invoke import build_request


def request_for(*argv: str) -> dict:
    return build_request(build_parser().parse_args(["invoke", "--name", "e", *argv]))


def test_sam2_points_negatives_and_a_box(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG bytes")
    body = request_for("--action", "sam2", "--image", str(image), "--point", "10,20", "--point", "30,40.5",
                       "--negative", "5,6", "--box", "1,2,300,400", "--single-mask", "--mask-format", "png")
    assert body == {"action": "sam2", "image": base64.b64encode(b"\x89PNG bytes").decode(),
                    "points": [[10.0, 20.0], [30.0, 40.5], [5.0, 6.0]], "labels": [1, 1, 0],
                    "box": [1.0, 2.0, 300.0, 400.0], "multimask": False, "mask_format": "png"}


def test_sam2_one_point_on_an_earlier_image_id():
    assert request_for("--action", "sam2", "--image-id", "abc", "--x", "3", "--y", "4") == {
        "action": "sam2", "image_id": "abc", "x": 3.0, "y": 4.0}


def test_langsam_from_a_url_with_options():
    body = request_for("--action", "langsam", "--image", "https://example.com/a.jpg", "--text", "cat",
                       "--max-detections", "3", "--box-threshold", "0.4", "--return-images")
    assert body == {"action": "langsam", "text_prompt": "cat", "image_url": "https://example.com/a.jpg",
                    "max_detections": 3, "box_threshold": 0.4, "return_images": True}


def test_ping_needs_nothing_else():
    assert request_for("--action", "ping") == {"action": "ping"}


@pytest.mark.parametrize("argv, message", [
    (["--action", "langsam", "--image", "https://e.com/a.jpg"], "--action langsam needs --text"),
    (["--action", "sam2", "--image", "/no/such/file.png", "--x", "1", "--y", "1"], "no such image file"),
    (["--action", "sam2", "--x", "1", "--y", "1"], "exactly one of image"),
    (["--action", "ping", "--async"], "--async needs --input-location"),
])
def test_mistakes_are_one_line_and_exit_1(argv, message, capsys):
    assert main(["invoke", "--name", "e", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("segserve-deploy invoke: ") and message in err and "Traceback" not in err


def test_a_malformed_point_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["invoke", "--name", "e", "--action", "sam2", "--point", "1;2"])
    assert exit_.value.code == 2
    assert "'1;2': expected 2 comma-separated numbers" in capsys.readouterr().err


def test_sam3_text_with_exemplars_and_a_click():
    body = request_for("--action", "sam3", "--image-id", "abc", "--text", "bus", "--exemplar", "1,2,30,40",
                       "--not-like", "50,60,70,80", "--score-threshold", "0.3", "--max-detections", "5")
    assert body == {"action": "sam3", "image_id": "abc", "text_prompt": "bus",
                    "exemplar_boxes": [[1.0, 2.0, 30.0, 40.0], [50.0, 60.0, 70.0, 80.0]], "exemplar_labels": [1, 0],
                    "score_threshold": 0.3, "max_detections": 5}
    assert request_for("--action", "sam3", "--image-id", "abc", "--x", "3", "--y", "4") == {
        "action": "sam3", "image_id": "abc", "x": 3.0, "y": 4.0}
