"""`ponogan data download cat2dog` / `portrait`: the fork's URL, its zip layout, over a stand-in HTTP
server on 127.0.0.1 (no network)."""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile

import pytest
from PIL import Image

from ponogan.cli import main as ponogan_main
from ponogan.data import create_dataset
from ponogan.data import download as download_module
from ponogan.data.download import DRIT_DATASETS, dataset_url

SPLITS = ("trainA", "trainB", "testA", "testB")


def test_drit_datasets_come_from_the_forks_download_script():
    # pytorch-DRIT-PONO-MS/datasets/download_dataset.sh: URL=http://vllab.ucmerced.edu/hylee/DRIT/datasets/$DATASET.zip
    for name in ("cat2dog", "portrait"):
        assert dataset_url(name) == f"http://vllab.ucmerced.edu/hylee/DRIT/datasets/{name}.zip"
    assert dataset_url("cat2dog", "drit") == dataset_url("cat2dog")
    with pytest.raises(ValueError, match="cat2dog"):
        dataset_url("horse2zebra", "drit")


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.mark.parametrize("name", DRIT_DATASETS)
def test_download_unpacks_the_forks_layout(server, tmp_path, monkeypatch, capsys, name):
    root, base = server
    (root / "hylee" / "DRIT" / "datasets").mkdir(parents=True)
    with zipfile.ZipFile(root / "hylee" / "DRIT" / "datasets" / f"{name}.zip", "w") as zf:
        for i, split in enumerate(SPLITS):  # the archive's own top folder, as the fork's unzip expects
            for k in range(2):
                path = tmp_path / f"{split}_{k}.jpg"
                Image.new("RGB", (12, 10), (60 * i, 20 * k, 0)).save(path)
                zf.write(path, f"{name}/{split}/{k}.jpg")
    url, names = download_module.KINDS["drit"]
    monkeypatch.setitem(
        download_module.KINDS, "drit", (url.replace("http://vllab.ucmerced.edu", base), names)
    )
    out = tmp_path / "datasets"
    assert ponogan_main(["data", "download", name, "--out", str(out)]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (out / name).iterdir()) == sorted(SPLITS)
    assert all(len(list((out / name / split).glob("*.jpg"))) == 2 for split in SPLITS)
    train = create_dataset("unaligned", out / name, load_size=8, crop_size=8)
    assert len(train) == 2 and train[0]["A"].shape == (3, 8, 8)
    assert not list(out.glob("*.zip")) and not list(out.glob("tmp*"))  # nothing left besides the data
