"""CUT / FastCUT model pieces against numbers from the official code (taesungp/contrastive-unpaired-
translation): anti-aliased resampling, the generator's named NCE taps, PatchSampleF, the PatchNCE
loss, the anti-aliased PatchGAN, and PONO-MS on the anti-aliased generator."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ponogan.models.antialias import BlurDownsample, BlurUpsample, binomial_filter
from ponogan.models.discriminators import PatchDiscriminator
from ponogan.models.patch_sample import PatchSampleF
from ponogan.models.resnet import ResnetGenerator, official_nce_taps
from ponogan.norm import PONO, MomentShortcut
from ponogan.training.losses_nce import cut_nce_loss, multilayer_nce_loss, patch_nce_loss


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny_generator(**kwargs) -> ResnetGenerator:
    return ResnetGenerator(ngf=4, n_blocks=2, **kwargs)


# --- parameter counts of the official networks -------------------------------------------------


@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("antialias_up", [True, False])
def test_generator_has_the_official_parameter_count(antialias, antialias_up):
    g = ResnetGenerator(antialias=antialias, antialias_up=antialias_up)
    assert n_params(g) == 11_378_179


def test_patch_sample_f_has_the_official_parameter_count_at_the_default_taps():
    g = ResnetGenerator(antialias=True, antialias_up=True)
    with torch.no_grad():
        taps = g.encode_taps(torch.randn(1, 3, 64, 64), official_nce_taps())
    channels = [t.shape[1] for t in taps.values()]
    assert channels == [3, 128, 256, 256, 256]
    assert n_params(PatchSampleF(channels)) == 560_384
    assert n_params(PatchSampleF(channels, use_mlp=False)) == 0


@pytest.mark.parametrize("antialias", [True, False])
def test_patchgan_with_instance_norm_has_the_official_parameter_count(antialias):
    d = PatchDiscriminator(norm="instance", antialias=antialias)
    assert n_params(d) == 2_764_737


# --- anti-aliasing layers ----------------------------------------------------------------------


def test_blur_filters_are_exact_and_stored_like_the_official_ones():
    down, up = BlurDownsample(5), BlurUpsample(7)
    row3, row4 = torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 3.0, 3.0, 1.0])
    assert torch.equal(down.kernel, (torch.outer(row3, row3) / 16).expand(5, 1, 3, 3))
    assert torch.equal(up.kernel, (torch.outer(row4, row4) / 64 * 4).expand(7, 1, 4, 4))
    assert torch.equal(binomial_filter(3), torch.outer(row3, row3) / 16)
    # persistent buffers, as in the official checkpoints (model.7.filt ...); no parameters
    assert list(down.state_dict()) == ["kernel"] and list(up.state_dict()) == ["kernel"]
    assert n_params(down) == n_params(up) == 0


def test_blur_downsample_is_reflect_pad_then_121_blur_at_stride_2():
    x = torch.randn(2, 3, 7, 6)
    got = BlurDownsample(3)(x)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    w = [1.0, 2.0, 1.0]
    want = torch.zeros(2, 3, 4, 3)
    for i in range(4):
        for j in range(3):
            for a in range(3):
                for b in range(3):
                    want[:, :, i, j] += w[a] * w[b] / 16 * padded[:, :, 2 * i + a, 2 * j + b]
    assert got.shape == (2, 3, 4, 3)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [(4, 4), (5, 9)])
def test_blur_upsample_is_bilinear_interpolation(size):
    """The [1, 3, 3, 1] transposed conv with replicate padding and the crop is bilinear x2
    (align_corners=False), an independent check of the padding and crop arithmetic."""
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    got = BlurUpsample(3)(x)
    want = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert got.shape == (2, 3, 2 * size[0], 2 * size[1]) and got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def test_blur_layers_check_their_channels():
    with pytest.raises(ValueError, match=r"BlurDownsample\(4\).*\(N, 4, H, W\)"):
        BlurDownsample(4)(torch.randn(1, 3, 8, 8))


# --- generator: anti-aliased stages and named taps ----------------------------------------------


def test_antialias_off_keeps_the_cyclegan_state_dict():
    keys = list(ResnetGenerator(ngf=4, n_blocks=1).state_dict())
    assert not [k for k in keys if "blur" in k or "kernel" in k]
    aa = ResnetGenerator(ngf=4, n_blocks=1, antialias=True, antialias_up=True).state_dict()
    assert [k for k in aa if k.endswith("kernel")] == [
        "down_blurs.0.kernel",
        "down_blurs.1.kernel",
        "up_blurs.0.kernel",
        "up_blurs.1.kernel",
    ]


def test_official_nce_layers_map_to_named_taps():
    assert official_nce_taps(antialias=True) == ("stem.pad", "down1.conv", "down2.conv", "block1", "block5")
    assert official_nce_taps(antialias=False) == ("stem.pad", "down1.conv", "down2", "block3", "block7")
    assert official_nce_taps([2, 3, 20], antialias=True) == ("stem", "stem", "block9")
    with pytest.raises(ValueError, match="layer 1 has no ponogan tap"):
        official_nce_taps([1])
    with pytest.raises(ValueError, match="layer 21 has no ponogan tap"):
        official_nce_taps([21])


def test_an_official_norm_tap_before_an_inplace_relu_is_the_relu_output():
    """Why official layer 8 without anti-aliasing is our ``down2`` (stage output, after ReLU): the
    official encoder loop keeps the norm's output tensor, which the in-place ReLU then rewrites."""
    seq = nn.Sequential(nn.InstanceNorm2d(4), nn.ReLU(inplace=True))
    x = torch.randn(1, 4, 5, 5)
    kept = []
    h = x
    for layer in seq:
        h = layer(h)
        kept.append(h)
    assert torch.equal(kept[0], torch.relu(nn.InstanceNorm2d(4)(x)))


@pytest.mark.parametrize(
    "antialias, shapes",
    [
        (True, [(3, 70, 70), (128, 64, 64), (256, 32, 32), (256, 16, 16), (256, 16, 16)]),
        (False, [(3, 70, 70), (128, 32, 32), (256, 16, 16), (256, 16, 16), (256, 16, 16)]),
    ],
)
def test_official_tap_shapes_at_64px(antialias, shapes):
    g = ResnetGenerator(antialias=antialias, antialias_up=antialias)
    taps = official_nce_taps(antialias=antialias)
    with torch.no_grad():
        feats = g.encode_taps(torch.randn(2, 3, 64, 64), taps)
    assert list(feats) == list(taps)
    assert [tuple(t.shape) for t in feats.values()] == [(2, *s) for s in shapes]


def test_taps_are_forwards_tensors_and_the_encoder_stops_after_the_last_tap():
    g = tiny_generator(antialias=True, antialias_up=True).eval()
    x = torch.randn(1, 3, 16, 16)
    calls = []
    g.blocks[1].register_forward_hook(lambda *_: calls.append("block2"))
    with torch.no_grad():
        feats = g.encode_taps(x, ["down1", "stem.pad", "block1"])
        assert list(feats) == ["down1", "stem.pad", "block1"] and calls == []
        torch.testing.assert_close(feats["stem.pad"], F.pad(x, (3, 3, 3, 3), mode="reflect"))
        stem = g.stem(x)
        conv1 = g.downs[0].conv(g.downs[0].pad(stem))
        torch.testing.assert_close(g.encode_taps(x, ["down1.conv"])["down1.conv"], conv1)
        torch.testing.assert_close(feats["down1"], g.down_blurs[0](g.downs[0](stem)))
    assert g.tap_names == (
        "stem.pad",
        "stem",
        "down1.conv",
        "down1",
        "down2.conv",
        "down2",
        "block1",
        "block2",
    )


@pytest.mark.parametrize("taps", [[], ["up1"], ["stem", "stem"]])
def test_encode_taps_rejects_bad_names(taps):
    with pytest.raises(ValueError, match="distinct tap names from: stem.pad, stem"):
        tiny_generator().encode_taps(torch.randn(1, 3, 8, 8), taps)


@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("shortcut", [None, "ms", "dms"])
def test_antialiased_generator_shapes_and_gradients(antialias, shortcut):
    g = tiny_generator(antialias=antialias, antialias_up=antialias, shortcut=shortcut)
    y = g(torch.randn(2, 3, 18, 22))
    assert y.shape == (2, 3, 18, 22)
    y.square().mean().backward()
    missing = [name for name, p in g.named_parameters() if p.grad is None]
    assert missing == []


# --- PONO-MS on the anti-aliased generator -----------------------------------------------------


def test_pono_ms_with_antialias_takes_moments_at_h_and_h2_and_uses_them_deepest_first():
    g = tiny_generator(antialias=True, antialias_up=True, shortcut="ms")
    x = torch.randn(2, 3, 32, 32)
    moments = g.extract_moments(x)
    assert [tuple(m.shape) for m, _ in moments] == [(2, 1, 32, 32), (2, 1, 16, 16)]
    blurred, used = {}, []
    for i, blur in enumerate(g.up_blurs):
        blur.register_forward_hook(lambda _m, _i, out, i=i: blurred.__setitem__(i, out))
    for k, ms in enumerate(g.shortcuts):
        ms.register_forward_hook(lambda _m, inputs, _o, k=k: used.append((k, *inputs)))
    with torch.no_grad():
        g(x)
    assert [k for k, *_ in used] == [1, 0]  # deepest first
    for i, (k, h, mean, std) in enumerate(used):
        assert h is blurred[i]  # MS right after the BlurUpsample, before the up conv
        torch.testing.assert_close(mean, moments[k][0])
        torch.testing.assert_close(std, moments[k][1])


def test_pono_ms_taps_stay_before_pono():
    """With the same weights (MS has none), taps up to the first conv equal the plain CUT ones."""
    plain = tiny_generator(antialias=True, antialias_up=True)
    ms = tiny_generator(antialias=True, antialias_up=True, shortcut="ms")
    ms.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 16, 16)
    names = ["stem.pad", "down1.conv"]
    for name, a, b in zip(
        names, plain.encode_taps(x, names).values(), ms.encode_taps(x, names).values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)


def test_shortcut_none_with_antialias_has_no_pono():
    g = tiny_generator(antialias=True, antialias_up=True)
    assert not any(isinstance(m, PONO | MomentShortcut) for m in g.modules())
    assert g.shortcuts is None and g.extract_moments(torch.randn(1, 3, 16, 16)) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(shortcut="ms", antialias=True), "antialias and antialias_up both on"),
        (dict(shortcut="dms", antialias_up=True), "antialias and antialias_up both on"),
        (dict(shortcut="ms", antialias=True, antialias_up=True, layout="official"), "layout='ponogan'"),
    ],
)
def test_pono_with_partial_or_official_antialias_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_generator(**kwargs)


# --- PatchSampleF ------------------------------------------------------------------------------


def feature_maps(n: int = 2) -> list[torch.Tensor]:
    return [torch.randn(n, 3, 12, 12), torch.randn(n, 16, 6, 6), torch.randn(n, 16, 3, 3)]


def test_patch_sample_f_samples_the_same_positions_for_every_image_and_normalises():
    f = PatchSampleF(use_mlp=False)
    feats = feature_maps()
    samples, ids = f(feats, num_patches=20, generator=torch.Generator().manual_seed(0))
    assert [tuple(s.shape) for s in samples] == [(2, 20, 3), (2, 20, 16), (2, 9, 16)]  # 9: all of 3x3
    for feat, sample, idx in zip(feats, samples, ids, strict=True):
        flat = feat.flatten(2).transpose(1, 2)[:, idx]  # (N, P, C) at the drawn positions
        torch.testing.assert_close(sample, flat / (flat.norm(dim=-1, keepdim=True) + 1e-7))
        assert len(set(idx.tolist())) == idx.numel()
    assert f.channels == (3, 16, 16)


def test_patch_ids_pass_back_out_and_a_seeded_generator_repeats_the_draw():
    f = PatchSampleF([3, 16, 16], nc=8)
    feats = feature_maps()
    _, ids_a = f(feats, 10, generator=torch.Generator().manual_seed(3))
    _, ids_b = f(feats, 10, generator=torch.Generator().manual_seed(3))
    _, reused = f([t + 1 for t in feats], 10, patch_ids=ids_a)
    assert all(torch.equal(a, b) and torch.equal(a, r) for a, b, r in zip(ids_a, ids_b, reused, strict=True))
    with pytest.raises(ValueError, match=r"patch_ids\[0\] must be .* in \[0, 144\)"):
        f(feats, 10, patch_ids=[torch.tensor([144]), ids_a[1], ids_a[2]])


def test_patch_sample_f_builds_lazily_and_loads_into_an_unbuilt_f():
    f = PatchSampleF(nc=8)
    assert not f.is_built and list(f.parameters()) == []
    f(feature_maps(), 4)
    assert f.channels == (3, 16, 16) and n_params(f) == 3 * 8 + 8 + 72 + 2 * (16 * 8 + 8 + 72)
    fresh = PatchSampleF(nc=8)
    fresh.load_state_dict(f.state_dict())
    assert fresh.channels == f.channels
    assert all(
        torch.equal(a, b) for a, b in zip(f.state_dict().values(), fresh.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match=r"built for tap channels \(3, 16, 16\)"):
        f([torch.randn(1, 4, 8, 8)] * 3, 4)


def test_patch_sample_f_init_is_xavier_gain_002_with_zero_biases():
    torch.manual_seed(0)
    f = PatchSampleF([256])
    first = f.mlps[0][0]
    assert torch.count_nonzero(first.bias) == 0
    want_std = 0.02 * (2.0 / (256 + 256)) ** 0.5  # xavier-normal std for a 256 x 256 weight
    assert abs(first.weight.std().item() / want_std - 1) < 0.05


# --- PatchNCE loss -----------------------------------------------------------------------------


def official_formula(q: torch.Tensor, k: torch.Tensor, batch: int, temperature: float = 0.07) -> torch.Tensor:
    """The official patchnce.py computation written out on ``(B*P, D)`` rows: batched dot products,
    the diagonal of the within-group negatives filled with -10, cross-entropy against column 0."""
    rows, d = q.shape
    pos = torch.bmm(q.view(rows, 1, d), k.view(rows, d, 1)).view(rows, 1)
    qb, kb = q.view(batch, -1, d), k.view(batch, -1, d)
    m = qb.shape[1]
    neg = torch.bmm(qb, kb.transpose(2, 1))
    neg = neg.masked_fill(torch.eye(m, dtype=torch.bool)[None], -10.0).view(-1, m)
    logits = torch.cat((pos, neg), dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(rows, dtype=torch.long), reduction="none")


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / (x.norm(dim=-1, keepdim=True) + 1e-7)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-6), (torch.float32, 1e-6)])
def test_patch_nce_loss_matches_the_official_formula(dtype, tol):
    """Per patch to 1e-6 (float32: relative, the losses are ~3.5, a few float32 ulps apart)."""
    torch.manual_seed(0)
    q, k = unit(torch.randn(3, 32, 16, dtype=dtype)), unit(torch.randn(3, 32, 16, dtype=dtype))
    rtol = tol if dtype == torch.float32 else 0.0
    got = patch_nce_loss(q, k)
    assert got.shape == (3, 32)
    want = official_formula(q.reshape(-1, 16), k.reshape(-1, 16), batch=3)
    torch.testing.assert_close(got.reshape(-1), want, atol=tol, rtol=rtol)
    all_negatives = patch_nce_loss(q, k, negatives_from_batch=True, temperature=0.2)
    want = official_formula(q.reshape(-1, 16), k.reshape(-1, 16), batch=1, temperature=0.2)
    torch.testing.assert_close(all_negatives.reshape(-1), want, atol=tol, rtol=rtol)


def test_patch_nce_loss_detaches_the_key_and_rewards_matching_patches():
    q = unit(torch.randn(2, 8, 4)).requires_grad_()
    k = q.detach().clone().requires_grad_()
    matched = patch_nce_loss(q, k).mean()
    matched.backward()
    assert k.grad is None and q.grad is not None
    assert matched < patch_nce_loss(q.detach(), unit(torch.randn(2, 8, 4))).mean()


def test_multilayer_loss_is_lambda_times_the_mean_over_taps():
    qs = [unit(torch.randn(2, 8, 4)), unit(torch.randn(2, 5, 4))]
    ks = [unit(torch.randn(2, 8, 4)), unit(torch.randn(2, 5, 4))]
    per_tap = [patch_nce_loss(q, k).mean() for q, k in zip(qs, ks, strict=True)]
    got = multilayer_nce_loss(qs, ks, lambda_nce=10.0)
    torch.testing.assert_close(got, 10.0 * (per_tap[0] + per_tap[1]) / 2)


def test_cut_nce_loss_uses_the_keys_positions_for_the_queries():
    torch.manual_seed(0)
    g = tiny_generator(antialias=True, antialias_up=True)
    taps = ("stem.pad", "down1.conv", "down2.conv", "block1")
    source = torch.randn(2, 3, 16, 16)
    generated = g(source)
    f = PatchSampleF([3, 8, 16, 16], nc=8)
    loss = cut_nce_loss(
        g, f, source, generated, taps, num_patches=12, generator=torch.Generator().manual_seed(5)
    )
    # by hand: the key pass draws the positions, the query pass reuses them
    with torch.no_grad():
        keys, ids = f(
            list(g.encode_taps(source, taps).values()), 12, generator=torch.Generator().manual_seed(5)
        )
        queries, _ = f(list(g.encode_taps(generated, taps).values()), 12, patch_ids=ids)
        want = sum(
            official_formula(q.reshape(-1, 8), k.reshape(-1, 8), batch=2).mean()
            for q, k in zip(queries, keys, strict=True)
        )
    torch.testing.assert_close(loss.detach(), want / len(taps), atol=1e-6, rtol=0)
    loss.backward()
    assert all(p.grad is not None for p in f.parameters())
    assert g.downs[0].conv.weight.grad is not None


def test_flipped_queries_are_flipped_back():
    """FastCUT: G saw the mirrored source, so its taps are mirrored back before the comparison. The
    reflect-padded input tap is exactly flip-symmetric, so the loss is then the unflipped one."""
    g = tiny_generator(antialias=True, antialias_up=True).eval()
    f = PatchSampleF([3], nc=8)
    source = torch.randn(1, 3, 16, 16)

    def loss(generated, flipped):
        rng = torch.Generator().manual_seed(1)
        return cut_nce_loss(
            g, f, source, generated, ["stem.pad"], num_patches=16, generator=rng, flipped=flipped
        )

    mirrored = torch.flip(source, [3])
    torch.testing.assert_close(loss(mirrored, flipped=True), loss(source, flipped=False))
    assert loss(mirrored, flipped=False) > loss(source, flipped=False)


# --- discriminator -----------------------------------------------------------------------------


def test_antialiased_patchgan_keeps_the_score_map_size_and_stores_the_blur_filters():
    d = PatchDiscriminator(norm="instance", ndf=8, antialias=True)
    plain = PatchDiscriminator(norm="instance", ndf=8)
    x = torch.randn(2, 3, 64, 64)
    assert d(x).shape == plain(x).shape == (2, 1, 6, 6)
    assert [k for k in d.state_dict() if k.endswith("kernel")] == [
        "net.1.kernel",
        "net.3.kernel",
        "net.5.kernel",
    ]
    assert [type(m).__name__ for m in d.net].count("BlurDownsample") == 3
