"""`ponogan weights download` (issue 14): fetches into the torch hub cache from a loopback HTTP server,
verifies the SHA-256, never replaces a file, and fails offline with eval's missing-weights message."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import subprocess
import sys
import threading
from functools import partial

import pytest

import ponogan.metrics.weights as weights_module
from ponogan.cli import main


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "served"``; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache; returns its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def _serve_as_fid(monkeypatch, base_url, served, payload: bytes, sha256: str | None = None):
    """Serve ``payload`` as the FID weight file, with its checksum (or ``sha256``) patched in."""
    name = weights_module.FID_INCEPTION.filename
    (served / name).write_bytes(payload)
    digest = sha256 or hashlib.sha256(payload).hexdigest()
    patched = dataclasses.replace(weights_module.FID_INCEPTION, url=f"{base_url}/{name}", sha256=digest)
    monkeypatch.setattr(weights_module, "FID_INCEPTION", patched)
    return patched


def _weights(*args):
    return main(["weights", "download", "--no-progress", *args])


def test_download_verifies_and_installs_into_the_hub_cache(server, hub, monkeypatch, capsys):
    base_url, served = server
    payload = b"pretend inception weights" * 1000
    item = _serve_as_fid(monkeypatch, base_url, served, payload)
    assert _weights("fid") == 0, capsys.readouterr().err
    target = hub / item.filename
    assert target.read_bytes() == payload
    assert sorted(p.name for p in hub.iterdir()) == [item.filename]  # no temporary file left
    assert "downloaded" in capsys.readouterr().out
    # a second run verifies the file already there and leaves it alone
    (served / item.filename).unlink()  # would fail if it tried to fetch again
    assert _weights("fid") == 0
    assert "already present" in capsys.readouterr().out


def test_prefix_checksums_work_like_torchvision(server, hub, monkeypatch, capsys):
    base_url, served = server
    payload = b"x" * 123
    item = _serve_as_fid(
        monkeypatch, base_url, served, payload, sha256=hashlib.sha256(payload).hexdigest()[:8]
    )
    assert _weights("fid") == 0, capsys.readouterr().err
    assert (hub / item.filename).read_bytes() == payload


def test_wrong_checksum_keeps_nothing(server, hub, monkeypatch, capsys):
    base_url, served = server
    item = _serve_as_fid(monkeypatch, base_url, served, b"tampered", sha256="0" * 64)
    assert _weights("fid") == 1
    err = capsys.readouterr().err
    assert "failed its check" in err and "Traceback" not in err
    assert not hub.exists() or list(hub.iterdir()) == []
    # an existing file that does not match is reported and never replaced
    hub.mkdir(parents=True, exist_ok=True)
    (hub / item.filename).write_bytes(b"the user's own file")
    assert _weights("fid") == 1
    assert "should start with" in capsys.readouterr().err
    assert (hub / item.filename).read_bytes() == b"the user's own file"


def test_offline_gives_the_missing_weights_message(hub, monkeypatch, capsys):
    item = dataclasses.replace(weights_module.FID_INCEPTION, url="http://127.0.0.1:9/pt_inception.pth")
    monkeypatch.setattr(weights_module, "FID_INCEPTION", item)
    assert _weights("fid") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for text in ("download failed", item.filename, item.url, str(hub / item.filename), "--fid-weights"):
        assert text in err
    assert not hub.exists() or list(hub.iterdir()) == []


def test_names_and_list(hub, capsys):
    assert main(["weights", "download", "bogus"]) == 2
    assert "unknown weight name" in capsys.readouterr().err
    assert main(["weights", "list", "all"]) == 0
    out = capsys.readouterr().out
    for name in ("pt_inception-2015-12-05-6726825d.pth", "alexnet-owt-7be5be79.pth", "vgg16-397923af.pth"):
        assert f"missing  {hub / name}" in out


def test_known_checksums_are_the_file_name_prefixes():
    files = [weights_module.FID_INCEPTION, *weights_module.LPIPS_BACKBONES.values()]
    for item in files:
        assert item.sha256 and item.filename.rsplit("-", 1)[1].startswith(item.sha256)


def test_command_imports_no_torch():
    code = "import sys, ponogan.cli, ponogan.cli.weights; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
