"""FID pipeline: the InceptionV3 built from a local file equals pytorch-fid's, FID(same) ~ 0 < FID(shifted),
the real-folder statistics cache, and the missing-weights message (no download attempted)."""

import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_fid.fid_score import get_activations
from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3

import ponogan.metrics.fid as fid_module
from ponogan.metrics import MissingWeightsError, fid_between_folders, folder_statistics, load_fid_model
from ponogan.metrics.fid import extract_features, tensor_features
from ponogan.metrics.inception import fid_inception_v3
from ponogan.metrics.weights import FID_INCEPTION


@pytest.fixture(scope="module")
def fid_weights(tmp_path_factory):
    """pytorch-fid's InceptionV3 state dict with kaiming-initialised convs (non-degenerate features)."""
    torch.manual_seed(0)
    net = fid_inception_v3()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("fid") / "inception_test.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def fid_model(fid_weights):
    return load_fid_model(fid_weights)


def _write_images(folder, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(arrays):
        Image.fromarray(array).save(folder / f"img{i}.png")
    return folder


def _random_images(n, size=24, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(autouse=True)
def _no_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.mark.slow
def test_features_equal_pytorch_fid(fid_weights, fid_model, tmp_path, monkeypatch):
    monkeypatch.undo()  # let pytorch-fid read the hub cache (the file is present, nothing is fetched)
    hub = tmp_path / "torch_home"
    (hub / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copy(fid_weights, hub / "hub" / "checkpoints" / FID_INCEPTION.filename)
    monkeypatch.setenv("TORCH_HOME", str(hub))
    reference = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    gray = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")  # both sides read it as RGB
    files = [tmp_path / "gray.png"]
    ref = get_activations(files, reference, batch_size=1, dims=2048, device="cpu", num_workers=0)
    ours = extract_features(files, fid_model, batch_size=1, progress=False)
    assert ours.shape == (1, 2048)
    assert ours.std() > 1e-3  # the test weights give non-degenerate features
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    one_channel = torch.from_numpy(gray).float()[None, None] / 127.5 - 1  # (1, 1, H, W) in [-1, 1]
    np.testing.assert_allclose(tensor_features(fid_model, one_channel), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_fid_same_set_is_zero_and_shifted_set_is_not(fid_model, tmp_path):
    images = _random_images(2)
    real = _write_images(tmp_path / "real", images)
    same = _write_images(tmp_path / "same", images)
    shifted = _write_images(tmp_path / "shifted", [(a // 2 + 100).astype(np.uint8) for a in images])
    cache = tmp_path / "cache"
    same_fid = fid_between_folders(real, same, model=fid_model, cache_dir=cache, progress=False)
    shifted_fid = fid_between_folders(real, shifted, model=fid_model, cache_dir=cache, progress=False)
    assert shifted_fid > 1e-3
    assert same_fid < 1e-6 * shifted_fid


def test_real_statistics_are_cached_and_invalidated(fid_model, tmp_path, monkeypatch):
    real = _write_images(tmp_path / "real", _random_images(2, size=16))
    cache = tmp_path / "cache"
    calls = []

    def fake_features(files, model, **kwargs):  # the cache logic does not need Inception features
        calls.append(len(files))
        return np.stack([np.frombuffer(p.read_bytes()[-64:], np.uint8).astype(float) for p in files])

    monkeypatch.setattr(fid_module, "extract_features", fake_features)
    first = folder_statistics(real, fid_model, cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.npz"))) == 1
    second = folder_statistics(real, fid_model, cache_dir=cache, progress=False)
    assert calls == [2]  # the second call was a cache hit
    np.testing.assert_array_equal(first.mu, second.mu)
    Image.fromarray(_random_images(1, size=16, seed=5)[0]).save(real / "img1.png")  # content changes
    os.utime(real / "img1.png", ns=(1, 1))
    folder_statistics(real, fid_model, cache_dir=cache, progress=False)
    assert calls == [2, 2] and len(list(cache.glob("*.npz"))) == 2


def test_missing_weights_name_file_url_and_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    with pytest.raises(MissingWeightsError) as info:
        load_fid_model()
    message = str(info.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in message
    assert FID_WEIGHTS_URL in message
    assert str(tmp_path / "empty_home" / "hub" / "checkpoints" / FID_INCEPTION.filename) in message
    with pytest.raises(MissingWeightsError, match="--fid-weights .*nowhere.pth does not exist"):
        load_fid_model(tmp_path / "nowhere.pth")


def test_wrong_weight_files_raise_clear_errors(tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="does not match pytorch-fid's InceptionV3"):
        load_fid_model(wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read weight file"):
        load_fid_model(garbage)


def test_too_few_images_for_statistics(fid_model, tmp_path):
    one = _write_images(tmp_path / "one", _random_images(1))
    with pytest.raises(ValueError, match="at least 2 images"):
        folder_statistics(one, fid_model, use_cache=False, progress=False)
