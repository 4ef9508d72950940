"""MUNIT generator with PONO-MS: encode/decode API, moments as arguments, styles, sizes, gradients."""

import pytest
import torch

from ponogan.models import MunitGenerator, create_generator

TINY = {"dim": 4, "style_dim": 3, "n_res": 1, "mlp_dim": 8}


def tiny(shortcut="ms", **kw):
    return create_generator("munit", shortcut=shortcut, **{**TINY, **kw})


@pytest.mark.parametrize("shortcut", [None, "ms", "dms"])
def test_encode_decode_shapes(shortcut):
    g = tiny(shortcut)
    x = torch.randn(2, 3, 32, 24)
    content, moments, style = g.encode(x)
    assert content.shape == (2, 16, 8, 6)
    assert style.shape == (2, 3, 1, 1)
    if shortcut is None:
        assert moments == []
    else:  # conv7 + 2 downsampling convs, shallow first
        assert [m.shape for m, _ in moments] == [(2, 1, 32, 24), (2, 1, 16, 12), (2, 1, 8, 6)]
        assert all((s > 0).all() for _, s in moments)
    y = g.decode(content, moments, style)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert g(x).shape == x.shape


def test_default_is_munit_with_ms_and_matches_the_paper_defaults():
    with torch.device("meta"):
        g = MunitGenerator()
    assert g.shortcut == "ms" and g.style_dim == 8
    linears = [m for m in g.mlp.modules() if isinstance(m, torch.nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    assert shapes == [(8, 256), (256, 256), (256, 4 * 2 * 2 * 256)]
    assert len(g.decoder.shortcuts) == 3 and len(g.decoder.blocks) == 4


@pytest.mark.parametrize("shortcut", ["ms", "dms"])
def test_decoding_with_another_images_moments_changes_the_output(shortcut):
    g = tiny(shortcut).eval()
    xa, xb = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16) * 2 + 0.5
    with torch.no_grad():
        ca, ma, sa = g.encode(xa)
        mb = g.encode(xb)[1]
        y_own, y_other = g.decode(ca, ma, sa), g.decode(ca, mb, sa)
        assert torch.equal(g.decode(ca, ma, sa), y_own)  # nothing stashed between calls
    assert not torch.allclose(y_own, y_other, atol=1e-5)


def test_plain_munit_ignores_moments_entirely():
    g = tiny(None).eval()
    x = torch.randn(1, 3, 16, 16)
    assert not any(isinstance(m, torch.nn.Module) and "Shortcut" in type(m).__name__ for m in g.modules())
    assert g.encode(x)[1] == []


def test_styles_change_the_output_cross_domain():
    gen_a, gen_b = tiny().eval(), tiny().eval()
    x = torch.randn(2, 3, 16, 16)
    ref = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        content, moments, _ = gen_a.encode(x)
        s1, s2 = gen_b.random_style(2), gen_b.random_style(2)
        y1, y2 = gen_b.decode(content, moments, s1), gen_b.decode(content, moments, s2)
        guided = gen_b.decode(content, moments, gen_b.encode(ref)[2])
    assert y1.shape == y2.shape == guided.shape == (2, 3, 16, 16)
    assert not torch.allclose(y1, y2, atol=1e-5)
    g = torch.Generator().manual_seed(7)
    a = gen_b.random_style(2, generator=g)
    assert torch.equal(a, gen_b.random_style(2, generator=torch.Generator().manual_seed(7)))


@pytest.mark.parametrize("size", [(70, 70), (33, 25), (5, 7)])
def test_any_input_size(size):
    g = tiny().eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        assert g(x).shape == x.shape
        c, m, s = g.encode(x)
        assert g.decode(c, m, s, size=size).shape == x.shape
        assert g.decode(c, m, s).shape[-2:] == (-(-size[0] // 4) * 4, -(-size[1] // 4) * 4)


@pytest.mark.parametrize("shortcut", [None, "ms", "dms"])
def test_every_parameter_gets_a_gradient(shortcut):
    """MUNIT's training step in miniature: within-domain reconstruction, cross-domain decode with a
    random style, latent reconstruction."""
    g = tiny(shortcut).train()
    x = torch.randn(2, 3, 16, 16)
    content, moments, style = g.encode(x)
    rec = g.decode(content, moments, style)
    fake = g.decode(content, moments, g.random_style(2))
    c2, _, s2 = g.encode(fake)
    loss = (rec - x).abs().mean() + (c2 - content).abs().mean() + s2.abs().mean()
    loss.backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None]
    assert not missing, missing


def test_deterministic_under_a_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        g = tiny("dms")
        outs.append(g(torch.randn(1, 3, 16, 16)))
    assert torch.equal(*outs)


def test_bad_decode_arguments_raise_clear_errors():
    g = tiny()
    c, m, s = g.encode(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="3 PONO moments, got 2"):
        g.decode(c, m[:2], s)
    with pytest.raises(ValueError, match="style must be"):
        g.decode(c, m, torch.randn(2, 5, 1, 1))
    other = tiny().encode(torch.randn(2, 3, 32, 32))[1]
    with pytest.raises(ValueError, match="do not match the decoder feature"):
        g.decode(c, other, s)
    assert g.decode(c, m, s[:, :, 0, 0]).shape == (2, 3, 16, 16)  # (N, style_dim) is accepted too
    with pytest.raises(ValueError, match="unknown activation"):
        MunitGenerator(activation="gelu")


@pytest.mark.parametrize("preset", ["munit_pono_ms_glyphs", "munit_pono_ms"])
def test_official_preset_generator_saves_and_reloads_bit_exactly(tmp_path, preset):
    """The official decoder registers each weight once, so safetensors (``save_pretrained``, the
    training state) takes its state dict; the reloaded generator gives the very same output."""
    from ponogan.models import load_pretrained, save_pretrained
    from ponogan.training import load_config
    from ponogan.training.presets import find_preset

    model = load_config(find_preset(preset)).model
    kwargs = {**model.generator_kwargs, "shortcut": model.shortcut}
    if preset == "munit_pono_ms":  # the paper's widths, shrunk: the layout is what is under test
        kwargs.update(dim=4, mlp_dim=8, n_res=1)
    g = create_generator(model.generator, **kwargs).eval()
    assert kwargs["layout"] == "official" and type(g.decoder).__name__ == "OfficialDecoder"
    names = list(g.state_dict())
    assert len(names) == len(set(names)) and not any(".shortcuts." in n for n in names)
    assert len(g.decoder.shortcuts) == 3 and g.decoder.shortcuts[0] is g.decoder.stages[0]
    run = save_pretrained(tmp_path / "run", {"gen_a": g}, {"family": "munit"})
    loaded = load_pretrained(run)[0]["gen_a"]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), g(x))
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in g.parameters())


def test_official_decoder_reads_state_dicts_with_the_stages_listed_twice():
    """State dicts written while the stages were also registered as ``shortcuts`` still load: equal
    copies are dropped, a lone copy is renamed, a copy that differs is refused."""
    g = tiny(layout="official").eval()
    state = g.state_dict()
    stage_keys = [k for k in state if k.startswith("decoder.stages.")]
    assert stage_keys
    doubled = {
        **state,
        **{k.replace(".stages.", ".shortcuts."): v.clone() for k, v in state.items() if k in stage_keys},
    }
    fresh = tiny(layout="official").eval()
    fresh.load_state_dict(doubled, strict=True)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(fresh(x), g(x))
    lone = {k.replace(".stages.", ".shortcuts."): v for k, v in state.items()}
    tiny(layout="official").load_state_dict(lone, strict=True)
    doubled[stage_keys[0].replace(".stages.", ".shortcuts.")] += 1
    with pytest.raises(RuntimeError, match="differs from decoder.stages"):
        tiny(layout="official").load_state_dict(doubled, strict=True)
