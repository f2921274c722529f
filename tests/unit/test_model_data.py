"""model.tar.gz from a model store: the required models always, sam3 when the store has it."""

from __future__ import annotations

import tarfile

import pytest

from deploy.model_data import models_in, pack


@pytest.mark.parametrize("with_sam3", [True, False])
def test_the_archive_holds_sam3_only_when_the_store_does(tmp_path, with_sam3):
    store = tmp_path / "store"
    for model in ("router", "langsam", "sam2") + (("sam3",) if with_sam3 else ()):
        (store / model).mkdir(parents=True)
        (store / model / "handler.py").write_text("# handler\n")
    (store / "notes.txt").write_text("not a model\n")
    archive = tmp_path / "model.tar.gz"
    pack(store, archive)
    with tarfile.open(archive) as tar:
        top = {name.split("/")[0] for name in tar.getnames()}
    expected = {"router", "langsam", "sam2"} | ({"sam3"} if with_sam3 else set())
    assert top == expected and set(models_in(store)) == expected
