"""The official layouts and the importer, against the official networks written out as plain functions.

The reference forwards below follow the official code's module order (junyanz/pytorch-CycleGAN-and-pix2pix
``networks.py``, Boyiliee/PONO ``networks_pono.py``) and read the official state-dict key names, so a
wrong layout, a wrong PONO variance or a wrong key mapping changes their output.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ponogan.cli import main as cli_main
from ponogan.models import create_generator, init_weights, load_pretrained
from ponogan.models.official import OfficialImportError, import_official, official_key_map


def _norm(x, sd, key, norm):
    if norm == "instance":
        return F.instance_norm(x, eps=1e-5)
    return F.batch_norm(
        x,
        sd[f"{key}.running_mean"],
        sd[f"{key}.running_var"],
        sd[f"{key}.weight"],
        sd[f"{key}.bias"],
        training=False,
        eps=1e-5,
    )


def _bn(x, sd, key):
    return _norm(x, sd, key, "batch")


def _conv(x, sd, key, stride=1, padding=0):
    return F.conv2d(x, sd[f"{key}.weight"], sd.get(f"{key}.bias"), stride, padding)


def _convt(x, sd, key, k=3):
    padding, out_pad = (1, 1) if k == 3 else (1, 0)
    return F.conv_transpose2d(x, sd[f"{key}.weight"], sd.get(f"{key}.bias"), 2, padding, out_pad)


def _pono_official(x):
    mean = x.mean(dim=1, keepdim=True)
    std = (x.var(dim=1, keepdim=True) + 1e-5).sqrt()  # unbiased, as the official PONO
    return (x - mean) / std, mean, std


def official_resnet(sd, x, *, n_blocks, norm, shortcut):
    """The official CycleGAN ResNet generator, or ResnetPONOMS/DMSGenerator, in eval mode."""
    if shortcut is None:
        x = F.relu(_norm(_conv(F.pad(x, (3,) * 4, mode="reflect"), sd, "model.1"), sd, "model.2", norm))
        for i in range(2):
            x = F.relu(_norm(_conv(x, sd, f"model.{4 + 3 * i}", 2, 1), sd, f"model.{5 + 3 * i}", norm))
        for j in range(n_blocks):
            x = _one_block(x, sd, f"model.{10 + j}", norm)
        for i in range(2):
            conv, bn = f"model.{10 + n_blocks + 3 * i}", f"model.{11 + n_blocks + 3 * i}"
            x = F.relu(_norm(_convt(x, sd, conv), sd, bn, norm))
        return torch.tanh(_conv(F.pad(x, (3,) * 4, mode="reflect"), sd, f"model.{17 + n_blocks}"))
    x = F.relu(
        _norm(
            _conv(F.pad(x, (3,) * 4, mode="reflect"), sd, "reflection_block.1"),
            sd,
            "reflection_block.2",
            norm,
        )
    )
    stats = []
    for i in range(2):
        y, mean, std = _pono_official(_conv(x, sd, f"down_model.{i}.conv", 2, 1))
        x = F.relu(_bn(y, sd, f"down_model.{i}.norm"))  # BatchNorm whatever --norm is
        stats.append((mean, std))
    stats.reverse()
    for j in range(n_blocks):
        x = _one_block(x, sd, f"res_block.{j}", norm)
    for i in range(2):
        mean, std = stats[i]
        if shortcut == "ms":
            x = F.relu(_bn(_convt(x * std + mean, sd, f"up_model.{i}.conv"), sd, f"up_model.{i}.norm"))
        else:
            h = F.relu(
                _bn(
                    _convt(torch.cat([mean, std], 1), sd, f"stat_convs.{i}.0.conv"),
                    sd,
                    f"stat_convs.{i}.0.norm",
                )
            )
            beta, gamma = F.relu(_conv(h, sd, f"stat_convs.{i}.1.conv", 1, 1)).chunk(2, 1)
            x = _bn(_convt(x, sd, f"up_model.{i}.conv"), sd, f"up_model.{i}.norm")
            x = F.relu(x * gamma + beta)
    return torch.tanh(_conv(F.pad(x, (3,) * 4, mode="reflect"), sd, "out_block.1"))


def _one_block(x, sd, prefix, norm):
    p = f"{prefix}.conv_block"
    y = F.relu(_norm(_conv(F.pad(x, (1,) * 4, mode="reflect"), sd, f"{p}.1"), sd, f"{p}.2", norm))
    y = _norm(_conv(F.pad(y, (1,) * 4, mode="reflect"), sd, f"{p}.5"), sd, f"{p}.6", norm)
    return x + y


def official_unet(sd, x, *, num_downs, norm):
    """The official pix2pix U-Net (nested UnetSkipConnectionBlocks), eval mode (dropout off)."""

    def level(x, k, prefix):
        if k == 0:
            d = _conv(x, sd, f"{prefix}.0", 2, 1)
            return torch.tanh(
                F.conv_transpose2d(
                    F.relu(level(d, 1, f"{prefix}.1.model")),
                    sd[f"{prefix}.3.weight"],
                    sd[f"{prefix}.3.bias"],
                    2,
                    1,
                )
            )
        d = _conv(F.leaky_relu(x, 0.2), sd, f"{prefix}.1", 2, 1)
        if k == num_downs - 1:
            u = F.conv_transpose2d(F.relu(d), sd[f"{prefix}.3.weight"], sd.get(f"{prefix}.3.bias"), 2, 1)
            return torch.cat([x, _norm(u, sd, f"{prefix}.4", norm)], 1)
        d = _norm(d, sd, f"{prefix}.2", norm)
        inner = level(d, k + 1, f"{prefix}.3.model")
        u = F.conv_transpose2d(F.relu(inner), sd[f"{prefix}.5.weight"], sd.get(f"{prefix}.5.bias"), 2, 1)
        return torch.cat([x, _norm(u, sd, f"{prefix}.6", norm)], 1)

    return level(x, 0, "model.model")


def _f64(sd):
    return {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}


def _official_state(arch, norm, shortcut, *, ngf=8, seed=0):
    """A random official-named state dict (and the ponogan twin it was drawn for)."""
    torch.manual_seed(seed)
    kwargs = {"ngf": ngf, "norm": norm, "shortcut": shortcut, "use_dropout": arch.startswith("unet")}
    if shortcut:
        kwargs["layout"] = "official"
    model = init_weights(create_generator(arch, **kwargs), "normal", 0.1)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.normal_(0, 0.2)
        elif name.endswith("running_var"):
            buf.uniform_(0.5, 2.0)
    own = model.state_dict()
    return {official: own[key].clone() for official, key in official_key_map(model, arch, shortcut).items()}


@pytest.mark.parametrize("norm", ["instance", "batch"])
@pytest.mark.parametrize("shortcut", [None, "ms", "dms"])
def test_official_resnet_imports_with_equal_outputs(tmp_path, norm, shortcut):
    sd = _official_state("resnet_6blocks", norm, shortcut)
    if norm == "instance":  # what PyTorch < 0.4 saved for InstanceNorm; the official loader drops it
        sd["model.2.running_mean" if shortcut is None else "reflection_block.2.running_mean"] = torch.zeros(8)
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(sd, path)
    run = import_official([path], tmp_path / "run", arch="resnet_6blocks", norm=norm, shortcut=shortcut)
    nets, config = load_pretrained(run)
    x = torch.rand(2, 3, 36, 44, dtype=torch.float64) * 2 - 1  # float64: any mismatch is a real one
    with torch.no_grad():
        want = official_resnet(_f64(sd), x, n_blocks=6, norm=norm, shortcut=shortcut)
        got = nets["G"].double()(x)
    assert (got - want).abs().max() < 1e-9
    assert config["family"] == "pix2pix" and config["imported_from"]["arch"] == "resnet_6blocks"


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_official_unet_imports_with_equal_outputs(tmp_path, norm):
    sd = _official_state("unet_128", norm, None)
    innermost = "model.model.1.model" + ".3.model" * 5 + ".1.weight"
    assert innermost in sd  # the official nesting of U-Net-128's innermost down-conv
    torch.save(sd, tmp_path / "latest_net_G.pth")
    run = import_official([tmp_path / "latest_net_G.pth"], tmp_path / "run", arch="unet_128", norm=norm)
    nets, _ = load_pretrained(run)
    x = torch.rand(2, 3, 128, 128, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        assert (nets["G"].double()(x) - official_unet(_f64(sd), x, num_downs=7, norm=norm)).abs().max() < 1e-9


def test_official_key_names_are_the_originals():
    sd = _official_state("resnet_9blocks", "instance", None)
    assert "model.26.weight" in sd and "model.10.conv_block.5.weight" in sd and len(sd) == 2 * 24
    dms = _official_state("resnet_9blocks", "instance", "dms", ngf=64)
    assert "stat_convs.1.1.norm.running_var" in dms and "up_model.0.norm.weight" in dms
    assert sum(v.numel() for k, v in dms.items() if not _is_buffer(k)) == 11_753_155


def _is_buffer(key):
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def test_cyclegan_pair_imports_as_cyclegan(tmp_path):
    for role, seed in (("G_A", 0), ("G_B", 1)):
        torch.save(
            _official_state("resnet_6blocks", "instance", "ms", seed=seed),
            tmp_path / f"latest_net_{role}.pth",
        )
    run = import_official(
        [tmp_path / "latest_net_G_A.pth", tmp_path / "latest_net_G_B.pth"],
        tmp_path / "run",
        arch="resnet_6blocks",
        norm="instance",
        shortcut="ms",
    )
    nets, config = load_pretrained(run)
    assert config["family"] == "cyclegan" and set(nets) == {"G_A", "G_B"}
    assert nets["G_A"].spec["kwargs"]["layout"] == "official"


def test_import_errors_are_one_line_with_a_hint(tmp_path, capsys):
    sd = _official_state("resnet_6blocks", "batch", None)
    torch.save(sd, tmp_path / "g.pth")
    with pytest.raises(OfficialImportError, match="fits --arch resnet_6blocks --norm batch"):
        import_official([tmp_path / "g.pth"], tmp_path / "a", arch="resnet_9blocks", norm="batch")
    with pytest.raises(OfficialImportError, match="fits --arch resnet_6blocks --norm batch"):
        import_official([tmp_path / "g.pth"], tmp_path / "b", arch="resnet_6blocks", norm="instance")
    (tmp_path / "list.pth").write_bytes(b"")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(OfficialImportError, match="not a state dict"):
        import_official([tmp_path / "list.pth"], tmp_path / "c", arch="unet_128", norm="batch")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    code = cli_main(
        [
            "import-official",
            str(tmp_path / "evil.pth"),
            "--arch",
            "unet_128",
            "--norm",
            "batch",
            "--out",
            str(tmp_path / "d"),
        ]
    )
    err = capsys.readouterr()
    assert code == 2 and "pwned" not in err.out and err.err.count("\n") == 1
    assert "pickled Python objects (print)" in err.err and "never loads" in err.err
    assert "weights_only" not in err.err  # torch's hint to load it unsafely is never passed on
    assert not (tmp_path / "d").exists()


def test_import_never_overwrites(tmp_path):
    torch.save(_official_state("resnet_6blocks", "instance", None), tmp_path / "g.pth")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    with pytest.raises(OfficialImportError, match="not an empty folder"):
        import_official([tmp_path / "g.pth"], out, arch="resnet_6blocks", norm="instance")
    assert (out / "notes.txt").read_text() == "keep" and len(list(out.iterdir())) == 1


@pytest.mark.parametrize("shortcut, params", [("ms", 11_379_331), ("dms", 11_753_155)])
def test_official_pono_resnet_parameter_counts(shortcut, params):
    g = create_generator("resnet_9blocks", shortcut=shortcut, layout="official")
    assert sum(p.numel() for p in g.parameters()) == params


def test_official_pono_munit_parameter_count():
    g = create_generator("munit", shortcut="ms", layout="official")
    # the fork's 15,142,923 less the 75,200 of its never-used `stat_convs`
    assert sum(p.numel() for p in g.parameters()) == 15_142_923 - 75_200


def test_official_layouts_differ_from_ponogan_and_are_validated():
    with pytest.raises(ValueError, match="no U-Net with PONO"):
        create_generator("unet_128", shortcut="ms", layout="official")
    with pytest.raises(ValueError, match="no 'dms' shortcut"):
        create_generator("munit", shortcut="dms", layout="official")
    with pytest.raises(ValueError, match="unknown layout"):
        create_generator("resnet_6blocks", shortcut="ms", layout="paper")
    official = create_generator("resnet_6blocks", ngf=8, shortcut="ms", layout="official")
    assert official.downs[0].pono.unbiased and type(official.ups[0].norm).__name__ == "BatchNorm2d"


def _munit_reference(gen, x, style):
    """The official PONO-MUNIT decode path written out: conv5-LN-MS-relu-up, twice, conv3-LN-MS-relu."""

    def ln(h):  # MUNIT's LayerNorm without affine: (x - mean) / (unbiased std + eps)
        flat = h.flatten(1)
        return (h - flat.mean(1)[:, None, None, None]) / (flat.std(1)[:, None, None, None] + 1e-5)

    enc = gen.content_encoder
    h, stats = x, []
    for block in enc.convs:
        c = block.conv(block.pad(h))
        mean, std = c.mean(1, keepdim=True), (c.var(1, keepdim=True) + 1e-5).sqrt()
        n = block.norm  # affine instance norm
        h = F.relu(F.instance_norm((c - mean) / std, weight=n.weight, bias=n.bias, eps=1e-5))
        stats.append((mean, std))
    content = enc.blocks(h)
    h = content
    params = gen.mlp(style)
    for block, p in zip(
        gen.decoder.blocks, params.split(gen.decoder.blocks[0].num_adain_params, 1), strict=True
    ):
        h = block(h, p)
    for i, stage in enumerate(gen.decoder.stages):
        mean, std = stats[len(stats) - 1 - i]
        h = F.relu(ln(stage.conv.conv(stage.conv.pad(h))) * std + mean)
        if i < len(gen.decoder.stages) - 1:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
    return gen.decoder.head(h)


def test_official_munit_decoder_follows_the_fork():
    torch.manual_seed(0)
    gen = init_weights(
        create_generator("munit", dim=8, mlp_dim=16, shortcut="ms", layout="official"), "kaiming"
    )
    gen.eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    style = torch.randn(2, 8, 1, 1)
    with torch.no_grad():
        content, moments, _ = gen.encode(x)
        got = gen.decode(content, moments, style)
        assert (got - _munit_reference(gen, x, style)).abs().max() < 1e-5


def test_every_init_argument_is_recorded_and_old_specs_still_load(tmp_path):
    g = create_generator("unet_128", ngf=8)
    assert g.spec["kwargs"] == {
        "in_channels": 3,
        "out_channels": 3,
        "num_downs": 7,
        "ngf": 8,
        "norm": "batch",
        "shortcut": None,
        "layout": "ponogan",
        "use_dropout": True,
    }
    # a run saved before `layout` existed: its spec holds only the non-default arguments
    old = create_generator("resnet_6blocks", ngf=8, n_blocks=2, shortcut="dms")
    from ponogan.models import save_pretrained

    save_pretrained(tmp_path, {"G": old}, {"family": "pix2pix"})
    config = json.loads((tmp_path / "config.json").read_text())
    config["generators"]["G"]["kwargs"] = {"n_blocks": 2, "ngf": 8, "shortcut": "dms"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    nets, _ = load_pretrained(tmp_path)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(nets["G"](x), old.eval()(x))


@pytest.mark.parametrize("demo", ["demo_pix2pix_pono_ms_glyphs", "demo_cyclegan_pono_ms_glyphs"])
def test_format_1_demos_give_the_outputs_they_gave_before_layouts(demo):
    """The demos shipped before ``layout``/full specs existed (kept in tests/data/run_v1) give the
    outputs they gave then."""
    ref = load_file("tests/data/demo_outputs_v0.safetensors")
    nets, _ = load_pretrained(f"tests/data/run_v1/{demo}")
    for role, net in nets.items():
        with torch.no_grad():
            out = net(ref["input"])
        assert (out - ref[f"{demo}.{role}"]).abs().max() < 1e-5


def _import_cli(path, out, *flags):
    return cli_main(["import-official", str(path), "--arch", "resnet_6blocks", "--out", str(out), *flags])


def test_a_file_sizing_an_absurd_network_is_refused_before_allocating(tmp_path, capsys, monkeypatch):
    """A small file whose first conv is 4096 wide would size a network of GBs: refused from the shapes."""
    state = {"model.1.weight": torch.zeros(4096, 3, 1, 1), "model.23.weight": torch.zeros(3, 8, 1, 1)}
    torch.save(state, tmp_path / "wide.pth")
    import ponogan.models.official as official

    def real_build(arch, **kwargs):
        assert kwargs.get("ngf", 64) <= 1024, "the 4096-wide network was built for real"
        return create_generator(arch, **kwargs)

    monkeypatch.setattr(official, "create_generator", real_build)
    code = _import_cli(tmp_path / "wide.pth", tmp_path / "out")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "ngf" in err and "1 to 1024" in err and "4096" in err, err
    assert not (tmp_path / "out").exists()


def test_a_file_with_odd_first_conv_shapes_is_one_line(tmp_path, capsys):
    torch.save({"model.1.weight": torch.zeros(8), "model.26.weight": torch.zeros(3)}, tmp_path / "odd.pth")
    code = _import_cli(tmp_path / "odd.pth", tmp_path / "out")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "do not match" in err, err


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool])
def test_integer_weights_are_refused(tmp_path, capsys, dtype):
    state = _official_state("resnet_6blocks", "instance", None, ngf=4)
    state["model.1.weight"] = state["model.1.weight"].to(dtype)
    torch.save(state, tmp_path / "latest_net_G.pth")
    code = _import_cli(tmp_path / "latest_net_G.pth", tmp_path / "out")
    err = capsys.readouterr().err
    assert (
        code == 2
        and err.count("\n") == 1
        and "floating-point weights only" in err
        and "model.1.weight" in err
    )
    assert str(dtype).removeprefix("torch.") in err and not (tmp_path / "out").exists()
