"""``models.check.static_bound``: the count of layer outputs per pixel read from a network's modules is
never under what its meta forward counts, so skipping the forward under the limit refuses nothing
less than before; and loading a small run runs no forward at all."""

from __future__ import annotations

import pytest
import torch

from ponogan.core.settings import MAX_ACTIVATIONS_PER_PIXEL
from ponogan.models.check import _forward_outputs, check_network, static_bound
from ponogan.models.registry import create_generator

CASES = [
    ("resnet_9blocks", {}),
    ("resnet_6blocks", {"shortcut": "dms", "layout": "official", "norm": "batch"}),
    ("resnet_6blocks", {"shortcut": "ms", "antialias": True, "antialias_up": True, "n_downsampling": 3}),
    ("unet_256", {"shortcut": "ms", "num_downs": 10}),
    ("unet_128", {"shortcut": "dms", "ngf": 8}),
    ("munit", {"shortcut": "ms", "layout": "official", "style_downsample": 6}),
    ("munit", {"dim": 8, "n_downsample": 4, "mlp_dim": 16}),
    ("drit", {}),
]


@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_the_static_bound_is_never_under_the_forward_count(name, kwargs):
    with torch.device("meta"):
        net = create_generator(name, **kwargs)
    for side in (256, 100):
        x = torch.empty(1, net.spec["kwargs"].get("in_channels", 3), side, side, device="meta")
        assert static_bound(net, side) >= _forward_outputs(net.eval(), x) / side**2


def test_a_small_run_loads_without_a_forward_and_a_wide_one_is_still_refused(monkeypatch):
    import ponogan.models.check as check
    from ponogan.inference.pipeline import TranslationPipeline

    def no_forward(net, x):
        raise AssertionError("a small run was run on the meta device")

    monkeypatch.setattr(check, "_forward_outputs", no_forward)
    for demo in ("demo_pix2pix_pono_ms_glyphs", "demo_cyclegan_pono_ms_glyphs"):
        TranslationPipeline.from_pretrained(f"checkpoints/{demo}", device="cpu")
    monkeypatch.undo()
    kwargs = {"ngf": 1024, "n_blocks": 6, "n_downsampling": 0}  # over the limit only once counted
    with torch.device("meta"):
        assert static_bound(create_generator("resnet_6blocks", **kwargs)) > MAX_ACTIVATIONS_PER_PIXEL
    with pytest.raises(ValueError, match="values per input pixel"):
        check_network("generator", "resnet_6blocks", kwargs, bounded=True)
