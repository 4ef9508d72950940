"""LPIPS with a local backbone file (equal to the lpips package's own loading), and diversity LPIPS."""

import shutil
import warnings

import lpips
import pytest
import torch
import torch.nn.functional as F
import torchvision

from ponogan.metrics import MissingWeightsError, diversity_lpips, load_lpips, lpips_distance
from ponogan.metrics.lpips_metric import lpips_per_image
from ponogan.metrics.weights import LPIPS_BACKBONES


@pytest.fixture(scope="module")
def alex_weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lpips") / "alexnet_test.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def model(alex_weights):
    return load_lpips("alex", alex_weights)


def _images(n=2, size=32):
    return torch.rand(n, 3, size, size) * 2 - 1


def test_backbone_is_loaded_from_the_file(model, alex_weights):
    state = torch.load(alex_weights, weights_only=True)
    loaded = dict(model.net.named_parameters())
    assert len(loaded) == 10  # 5 convs x (weight, bias), all from torchvision's features.<i>
    for name, value in loaded.items():
        _, index, param = name.split(".")
        torch.testing.assert_close(value, state[f"features.{index}.{param}"])
    assert not any(p.requires_grad for p in model.parameters())


def test_squeezenet_backbone_with_nested_modules_loads(tmp_path):
    """SqueezeNet's fire modules nest their convolutions (``features.3.squeeze.weight``)."""
    path = tmp_path / "squeezenet_test.pth"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    state = torch.load(path, weights_only=True)
    for name, value in load_lpips("squeeze", path).net.named_parameters():
        torch.testing.assert_close(value, state[f"features.{name.split('.', 1)[1]}"])


def test_distances_equal_the_lpips_package(model, alex_weights, tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copy(alex_weights, home / "hub" / "checkpoints" / LPIPS_BACKBONES["alex"].filename)
    monkeypatch.setenv("TORCH_HOME", str(home))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = lpips.LPIPS(net="alex", verbose=False).eval()  # loads the same file from the hub cache
    a, b = _images(), _images()
    torch.testing.assert_close(lpips_per_image(model, a, b), reference(a, b).flatten())


def test_basic_properties(model):
    a = _images()
    b = (a + 0.2 * torch.randn_like(a)).clamp(-1, 1)
    c = (a + 0.8 * torch.randn_like(a)).clamp(-1, 1)
    assert lpips_distance(model, a, a) == pytest.approx(0.0, abs=1e-7)
    assert lpips_distance(model, a, b) == pytest.approx(lpips_distance(model, b, a), rel=1e-5)
    assert 0 < lpips_distance(model, a, b) < lpips_distance(model, a, c)


def test_grayscale_and_resize_rules(model):
    gray_a, gray_b = _images(1)[:, :1], _images(1)[:, :1]
    assert lpips_distance(model, gray_a, gray_b) == pytest.approx(
        lpips_distance(model, gray_a.expand(-1, 3, -1, -1), gray_b.expand(-1, 3, -1, -1))
    )
    fake, big = _images(1, 32), _images(1, 48)
    resized = F.interpolate(big, size=(32, 32), mode="bicubic", align_corners=False, antialias=True).clamp(
        -1, 1
    )
    assert lpips_distance(model, fake, big) == pytest.approx(lpips_distance(model, fake, resized))


def test_diversity_is_the_mean_pairwise_distance(model):
    a, b, c = _images(), _images(), _images()
    assert diversity_lpips(model, [a, a, a]) == pytest.approx(0.0, abs=1e-7)
    assert diversity_lpips(model, [a, b]) == pytest.approx(lpips_distance(model, a, b))
    expected = (lpips_distance(model, a, b) + lpips_distance(model, a, c) + lpips_distance(model, b, c)) / 3
    assert diversity_lpips(model, [a, b, c]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="at least 2 outputs"):
        diversity_lpips(model, [a])
    with pytest.raises(ValueError, match="share one shape"):
        diversity_lpips(model, [a, _images(2, 16)])


def test_missing_and_wrong_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(MissingWeightsError) as info:
        load_lpips()
    message = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in message
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in message
    assert str(tmp_path / "empty" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in message
    assert "--lpips-weights" in message
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="not a torchvision alex state dict"):
        load_lpips("alex", wrong)
    with pytest.raises(ValueError, match="unknown LPIPS backbone"):
        load_lpips("resnet", wrong)
