"""ResNet / U-Net generators, discriminators, the registry and the padding helpers."""

import json

import pytest
import torch

from ponogan.models import create_discriminator, create_generator
from ponogan.models.layers import crop_to, pad_to_multiple
from ponogan.norm import pono_reference

TINY = {
    "resnet_9blocks": {"ngf": 4, "n_blocks": 1},
    "unet_256": {"ngf": 2, "num_downs": 5},
}
SHORTCUTS = [None, "ms", "dms"]
NORMS = ["instance", "batch", "group", "switch", "layer", "pono", "none"]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def build_meta(kind, name, **kwargs):
    """Build without allocating or initialising weights: counting needs no forward."""
    factory = create_generator if kind == "G" else create_discriminator
    with torch.device("meta"):
        return factory(name, **kwargs)


@pytest.mark.parametrize(
    "kind, name, kwargs, expected",
    [
        ("G", "resnet_9blocks", {}, 11_378_179),
        ("G", "resnet_6blocks", {}, 7_837_699),
        ("G", "unet_256", {}, 54_413_955),
        ("G", "unet_128", {}, 41_828_995),
        ("G", "munit", {"shortcut": None}, 15_026_187),
        ("D", "patchgan", {"norm": "batch"}, 2_765_633),
    ],
)
def test_baseline_parameter_counts_match_the_originals(kind, name, kwargs, expected):
    assert n_params(build_meta(kind, name, **kwargs)) == expected


@pytest.mark.parametrize("name", ["resnet_9blocks", "unet_256", "munit"])
def test_ms_adds_no_parameters_and_dms_adds_some(name):
    base = n_params(build_meta("G", name, shortcut=None))
    assert n_params(build_meta("G", name, shortcut="ms")) == base
    assert n_params(build_meta("G", name, shortcut="dms")) > base


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("shortcut", SHORTCUTS)
@pytest.mark.parametrize("norm", NORMS)
def test_generator_shapes_over_norms_and_shortcuts(name, shortcut, norm):
    g = create_generator(name, norm=norm, shortcut=shortcut, in_channels=1, out_channels=2, **TINY[name])
    y = g(torch.randn(2, 1, 32, 32))
    assert y.shape == (2, 2, 32, 32)
    assert torch.isfinite(y).all() and y.abs().max() <= 1


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("shortcut", SHORTCUTS)
def test_every_parameter_gets_a_gradient(name, shortcut):
    g = create_generator(name, norm="switch", shortcut=shortcut, **TINY[name]).train()
    x, target = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1
    (g(x) - target).abs().mean().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient (DDP would need find_unused_parameters): {missing}"
    assert all(torch.isfinite(p.grad).all() for p in g.parameters())


@pytest.mark.parametrize("name", list(TINY))
def test_moments_are_pono_of_the_encoder_levels_shallow_first(name):
    g = create_generator(name, shortcut="ms", **TINY[name]).eval()
    x = torch.randn(2, 3, 32, 32)
    moments = g.extract_moments(x)
    sizes = [m[0].shape for m in moments]
    expected_levels = 2 if name.startswith("resnet") else TINY[name]["num_downs"] - 1
    assert sizes == [(2, 1, 32 // 2 ** (k + 1), 32 // 2 ** (k + 1)) for k in range(expected_levels)]
    level = g.downs[0] if name.startswith("resnet") else g.encoder[0].conv
    pre = level.conv(level.pad(g.stem(x) if name.startswith("resnet") else x))
    _, mean, std = pono_reference(pre)
    torch.testing.assert_close(moments[0][0], mean)
    torch.testing.assert_close(moments[0][1], std)
    assert create_generator(name, shortcut=None, **TINY[name]).extract_moments(x) == []


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("shortcut", ["ms", "dms"])
def test_shortcut_uses_the_moments(name, shortcut):
    """Swapping in the moments of another image (via a pre-hook on each shortcut) changes the output."""
    g = create_generator(name, shortcut=shortcut, **TINY[name]).eval()
    with torch.no_grad():
        for p in g.parameters():  # DMS starts as MS; perturb it so its own path is exercised too
            p.add_(0.01 * torch.randn_like(p))
    xa, xb = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32) * 3 + 1
    other = g.extract_moments(xb)
    n_levels = len(other)
    with torch.no_grad():
        ya = g(xa)
        handles = [
            sc.register_forward_pre_hook(lambda m, args, i=i: (args[0], *other[i]))
            for i, sc in zip(range(n_levels), g.shortcuts, strict=True)
        ]
        y_swapped = g(xa)
        for h in handles:
            h.remove()
        assert torch.equal(g(xa), ya)
    assert not torch.allclose(ya, y_swapped, atol=1e-4)


@pytest.mark.parametrize("name", ["resnet_9blocks", "unet_256"])
@pytest.mark.parametrize("size", [(70, 70), (333, 250), (5, 7)])
def test_any_input_size(name, size):
    kwargs = {"ngf": 2, "n_blocks": 1} if name.startswith("resnet") else {"ngf": 1, "use_dropout": False}
    g = create_generator(name, shortcut="ms", **kwargs).eval()
    with torch.no_grad():
        assert g(torch.randn(1, 3, *size)).shape == (1, 3, *size)


@pytest.mark.parametrize("name", list(TINY))
def test_deterministic_under_a_seed(name):
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        g = create_generator(name, shortcut="dms", **TINY[name])
        outs.append(g(torch.randn(2, 3, 32, 32)))
    assert torch.equal(outs[0], outs[1])


def test_pad_to_multiple_reflects_or_replicates_and_crops_back():
    x = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(1, 2, 5, 6)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (1, 2, 8, 8) and size == (5, 6)
    torch.testing.assert_close(padded[..., 5, :6], x[..., 3, :])  # reflect: row 5 mirrors row 3
    assert torch.equal(crop_to(padded, size), x)
    small, _ = pad_to_multiple(x, 16)  # pad larger than the image -> replicate
    torch.testing.assert_close(small[..., 15, :6], x[..., 4, :])
    same, _ = pad_to_multiple(x[..., :4, :4], 4)
    assert same.shape == (1, 2, 4, 4)
    with pytest.raises(ValueError, match="N, C, H, W"):
        pad_to_multiple(x[0], 4)


def test_patchgan_receptive_field_is_70():
    d = create_discriminator("patchgan", ndf=2, norm="none")
    x = torch.randn(1, 3, 160, 160, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    seen = x.grad[0].abs().sum(0) > 0
    rows, cols = seen.any(1).nonzero(), seen.any(0).nonzero()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


@pytest.mark.parametrize("norm", ["batch", "instance", "spectral"])
def test_discriminator_shapes(norm):
    kw = {"spectral_norm": True, "norm": "none"} if norm == "spectral" else {"norm": norm}
    x = torch.randn(2, 3, 64, 64)
    assert create_discriminator("patchgan", ndf=4, **kw)(x).shape == (2, 1, 6, 6)
    assert create_discriminator("pixel", ndf=4, **kw)(x).shape == (2, 1, 64, 64)
    outs = create_discriminator("multiscale", ndf=4, n_layers=2, n_scales=3, **kw)(x)
    assert [o.shape for o in outs] == [(2, 1, 16, 16), (2, 1, 8, 8), (2, 1, 4, 4)]


def test_spectral_norm_wraps_every_conv():
    d = create_discriminator("patchgan", ndf=4, spectral_norm=True)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)


def test_multiscale_rejects_images_too_small():
    d = create_discriminator("multiscale", ndf=4)
    with pytest.raises(ValueError, match="too small"):
        d(torch.randn(1, 3, 32, 32))


def test_registry_spec_rebuilds_the_model():
    g = create_generator("resnet_6blocks", ngf=4, shortcut="ms")
    spec = json.loads(json.dumps(g.spec))
    assert spec == {
        "name": "resnet_6blocks",
        "kwargs": {
            "in_channels": 3,
            "out_channels": 3,
            "ngf": 4,
            "n_blocks": 6,
            "norm": "instance",
            "shortcut": "ms",
            "layout": "ponogan",
            "antialias": False,
            "antialias_up": False,
            "use_dropout": False,
            "n_downsampling": 2,
            "pad_type": "reflect",
        },
    }
    rebuilt = create_generator(spec["name"], **spec["kwargs"])
    shapes = {k: v.shape for k, v in g.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    assert create_discriminator("multiscale", ndf=4).spec["kwargs"]["n_scales"] == 3


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: create_generator("resnet_12blocks"), "valid names: resnet_9blocks"),
        (lambda: create_discriminator("stylegan"), "valid names: patchgan, pixel, multiscale"),
        (lambda: create_generator("unet_256", ngff=3), "unknown option"),
        (lambda: create_generator("resnet_9blocks", norm="fancy"), "unknown norm"),
        (lambda: create_generator("resnet_9blocks", norm="adain"), "style code"),
        (lambda: create_generator("unet_128", shortcut="skip"), "unknown shortcut"),
        (lambda: create_generator("munit", shortcut="MS"), "unknown shortcut"),
        (lambda: create_discriminator("patchgan", n_layers=0), "n_layers"),
        (lambda: create_generator("resnet_9blocks", norm=object()), "norm name must be a string|JSON"),
    ],
)
def test_bad_options_raise_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
