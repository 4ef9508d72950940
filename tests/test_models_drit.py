"""DRIT networks: parameter counts of the fork (issue 23), equality with a float64 plain-function
reading of the fork's forward (its state-dict key names, MS fixed), MS acting, shapes at 64 px."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ponogan.models.drit import (
    DritAttributeEncoder,
    DritConcatGenerator,
    DritContentEncoder,
    DritGenerator,
    DritVariationalAttributeEncoder,
    init_drit_,
)
from ponogan.models.drit_discriminators import DritContentDiscriminator, DritImageDiscriminator

pytestmark = pytest.mark.usefixtures("one_thread")


def count(*nets: nn.Module) -> int:
    """Parameters of the nets together, a shared module counted once."""
    return sum(p.numel() for p in {id(p): p for net in nets for p in net.parameters()}.values())


def test_parameter_counts_equal_the_fork():
    shared = DritConcatGenerator.make_shared()
    counts = {
        "enc_c": count(DritContentEncoder()),
        "enc_c_pono": count(DritContentEncoder(pono=True)),
        "enc_a": count(DritAttributeEncoder()),
        "enc_a_concat": count(DritVariationalAttributeEncoder()),
        "gen": count(DritGenerator()),
        "dis": count(DritImageDiscriminator()),
        "dis_c_moments": count(DritContentDiscriminator(with_moments=True)),
        "dis_c": count(DritContentDiscriminator()),
        "gen_concat_pair": count(DritConcatGenerator(shared), DritConcatGenerator(shared)),
    }
    assert counts == {
        "enc_c": 9_018_112,
        "enc_c_pono": 9_018_112,
        "enc_a": 2_764_936,
        "enc_a_concat": 1_344_080,
        "gen": 8_573_187,
        "dis": 8_271_171,
        "dis_c_moments": 10_758_913,
        "dis_c": 10_683_649,
        # G_concat: the shared block once, then per domain 3 blocks at 264 ch and three ConvTs
        "gen_concat_pair": 9_564_710,
    }
    generator_side = counts["enc_c"] + 2 * counts["enc_a"] + 2 * counts["gen"]
    assert generator_side == 31_694_358
    assert generator_side + 4 * counts["dis"] + counts["dis_c_moments"] == 75_537_955


# ----- the fork's forward as plain functions on its own state-dict keys (float64) -----


def conv(x, sd, key, stride=1, pad=0):
    if pad:
        x = F.pad(x, (pad,) * 4, mode="reflect")
    return F.conv2d(x, sd[key + ".weight"], sd[key + ".bias"], stride)


def pono(x, eps=1e-5):
    mean = x.mean(dim=1, keepdim=True)
    std = (x.var(dim=1, keepdim=True) + eps).sqrt()
    return (x - mean) / std, mean, std


def ins_res(x, sd, key):  # INSResBlock: model = [pad, conv, IN, ReLU, pad, conv, IN]
    h = F.relu(F.instance_norm(conv(x, sd, key + ".model.1", pad=1)))
    return x + F.instance_norm(conv(h, sd, key + ".model.5", pad=1))


def fork_enc_c_pono_a(x, sd):  # E_content_pono_ms.forward_a in eval mode (no noise)
    stats = []
    h, mean, std = pono(conv(x, sd, "encA_down.0.model1.1", pad=3))
    stats.append((mean, std))
    h = F.leaky_relu(h, 0.01)
    for i in (1, 2):
        h, mean, std = pono(conv(h, sd, f"encA_down.{i}.model1.1", 2, 1))
        stats.append((mean, std))
        h = F.relu(F.instance_norm(h))
    for i in range(3):
        h = ins_res(h, sd, f"encA_res.{i}")
    return ins_res(h, sd, "conv_share.0"), stats


def fork_ms(x, mean, std, fixed):  # MS.forward: the fork computes x.mul(std), x.add(mean) and drops both
    return x * std + mean if fixed else x


def fork_gen_pono_a(x, stats, z, sd, ms_fixed=True):  # G_pono_ms.forward_a
    stats = list(stats)
    z = F.linear(
        F.relu(
            F.linear(
                F.relu(F.linear(z, sd["mlpA.0.weight"], sd["mlpA.0.bias"])),
                sd["mlpA.2.weight"],
                sd["mlpA.2.bias"],
            )
        ),
        sd["mlpA.4.weight"],
        sd["mlpA.4.bias"],
    )
    out = x
    for k, zk in enumerate(z.split(z.shape[1] // 4, dim=1), start=1):
        zmap = zk[:, :, None, None].expand(-1, -1, out.shape[2], out.shape[3])
        o1 = F.instance_norm(conv(out, sd, f"decA{k}.conv1.0.1", pad=1))
        o2 = F.relu(
            conv(F.relu(conv(torch.cat([o1, zmap], 1), sd, f"decA{k}.blk1.0")), sd, f"decA{k}.blk1.2")
        )
        o3 = F.instance_norm(conv(o2, sd, f"decA{k}.conv2.0.1", pad=1))
        o4 = F.relu(
            conv(F.relu(conv(torch.cat([o3, zmap], 1), sd, f"decA{k}.blk2.0")), sd, f"decA{k}.blk2.2")
        )
        out = o4 + out
    for i in (0, 1):
        mean, std = stats.pop()
        out = fork_ms(out, mean, std, ms_fixed)
        p = f"decA5.{i}.model"
        out = F.conv_transpose2d(out, sd[p + ".0.weight"], sd[p + ".0.bias"], 2, 1, 1)
        w, b = sd[p + ".1.weight"], sd[p + ".1.bias"]
        out = F.relu(F.layer_norm(out, out.shape[1:], w.expand(out.shape[1:]), b.expand(out.shape[1:])))
    mean, std = stats.pop()
    out = fork_ms(out, mean, std, ms_fixed)
    return torch.tanh(F.conv_transpose2d(out, sd["decA5.2.weight"], sd["decA5.2.bias"]))


def fork_enc_a_a(x, sd):  # E_attr.forward_a
    h = F.relu(conv(x, sd, "model_a.1", pad=3))
    for i in (4, 7, 10, 13):
        h = F.relu(conv(h, sd, f"model_a.{i}", 2, 1))
    return conv(F.adaptive_avg_pool2d(h, 1), sd, "model_a.16").flatten(1)


def fork_dis(x, sd):  # MultiScaleDis.forward
    outs = []
    for s in range(3):
        h = x
        for layer in range(4):
            h = F.leaky_relu(conv(h, sd, f"Diss.{s}.{layer}.model.1", 2, 1), 0.01)
        outs.append(conv(h, sd, f"Diss.{s}.4"))
        x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    return outs


def fork_dis_content(x, stats, sd):  # Dis_content_pono_ms.forward
    maps = [F.adaptive_avg_pool2d(torch.cat([m, s], 1), x.shape[2:]) for m, s in stats]
    h = torch.cat([x, *maps], 1)
    for i in range(3):
        h = F.leaky_relu(conv(h, sd, f"model.{i}.model.1", 2, 3), 0.01)
    h = F.leaky_relu(conv(h, sd, "model.3.model.1"), 0.01)
    return conv(h, sd, "model.4").view(-1)


# ponogan key -> fork key, per network
RENAMES = {
    "enc_c": [
        (r"^a\.down\.(\d)\.conv\.", r"encA_down.\1.model1.1."),
        (r"^a\.res\.(\d)\.conv1\.conv\.", r"encA_res.\1.model.1."),
        (r"^a\.res\.(\d)\.conv2\.conv\.", r"encA_res.\1.model.5."),
        (r"^share\.0\.conv1\.conv\.", "conv_share.0.model.1."),
        (r"^share\.0\.conv2\.conv\.", "conv_share.0.model.5."),
    ],
    "gen": [
        (r"^mlp\.", "mlpA."),
        (r"^res\.(\d)\.conv(\d)\.1\.", lambda m: f"decA{int(m[1]) + 1}.conv{m[2]}.0.1."),
        (r"^res\.(\d)\.blk", lambda m: f"decA{int(m[1]) + 1}.blk"),
        (r"^up\.(\d)\.(\d)\.", r"decA5.\1.model.\2."),
        (r"^out\.", "decA5.2."),
    ],
    "enc_a": [(r"^model\.", "model_a.")],
    "dis": [(r"^scales\.(\d)\.(\d)\.1\.", r"Diss.\1.\2.model.1."), (r"^scales\.(\d)\.4\.", r"Diss.\1.4.")],
    "dis_c": [(r"^model\.(\d)\.1\.", r"model.\1.model.1."), (r"^model\.4\.", "model.4.")],
}


def fork_state(net: nn.Module, kind: str) -> dict[str, torch.Tensor]:
    """``net``'s state dict under the fork's key names (domain A); the LayerNorm affine as (C, 1, 1)."""
    out = {}
    for key, value in net.state_dict().items():
        for pattern, repl in RENAMES[kind]:
            key, hits = re.subn(pattern, repl, key)
            if hits:
                break
        else:
            if kind == "enc_c" and key.startswith("b."):
                continue
            raise AssertionError(f"no fork name for {key}")
        out[key] = value.view(-1, 1, 1) if ".model.1." in key and kind == "gen" else value
    return out


DIM = 16  # the fork's topology at a quarter of its widths (dim 64): same code paths, a fraction of the time


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    built = {
        "enc_c": DritContentEncoder(pono=True, dim=DIM),
        "enc_a": DritAttributeEncoder(dim=DIM),
        "gen": DritGenerator(dim=DIM),
        "dis": DritImageDiscriminator(ndf=DIM),
        "dis_c": DritContentDiscriminator(with_moments=True, channels=4 * DIM),
    }
    for net in built.values():
        init_drit_(net)
        for p in net.parameters():  # nonzero biases and LayerNorm affine so the comparison covers them
            if p.dim() == 1:
                p.data.normal_(0.0, 0.1).add_(1.0 if p.numel() in (DIM, 2 * DIM) else 0.0)
        net.double().eval()
    return built


def test_forward_equals_the_fork_with_ms_fixed(nets):
    torch.manual_seed(1)
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64) * 2 - 1
    z = torch.randn(2, 8, dtype=torch.float64)
    sd = {k: fork_state(net, k) for k, net in nets.items()}
    with torch.no_grad():
        content, moments = nets["enc_c"](x, "a")
        ref_content, ref_stats = fork_enc_c_pono_a(x, sd["enc_c"])
        torch.testing.assert_close(content, ref_content, rtol=1e-9, atol=1e-9)
        assert [m.shape[-1] for m, _ in moments] == [64, 32, 16] and content.shape == (2, 4 * DIM, 16, 16)
        for (m, s), (rm, rs) in zip(moments, ref_stats, strict=True):
            torch.testing.assert_close((m, s), (rm, rs), rtol=1e-9, atol=1e-9)
        y = nets["gen"](content, z, moments)
        assert y.shape == (2, 3, 64, 64)
        torch.testing.assert_close(
            y, fork_gen_pono_a(ref_content, ref_stats, z, sd["gen"]), rtol=1e-9, atol=1e-9
        )
        code = nets["enc_a"](x)
        assert code.shape == (2, 8)
        torch.testing.assert_close(code, fork_enc_a_a(x, sd["enc_a"]), rtol=1e-9, atol=1e-9)
        outs = nets["dis"](x)
        assert [o.shape[-1] for o in outs] == [4, 2, 1]
        for o, r in zip(outs, fork_dis(x, sd["dis"]), strict=True):
            torch.testing.assert_close(o, r, rtol=1e-9, atol=1e-9)
        # the content D needs content of at least 25 px (the fork's crop 216 gives 54): a 32 px code
        big = torch.randn(2, 4 * DIM, 32, 32, dtype=torch.float64)
        stats = [
            (torch.randn(2, 1, s, s, dtype=torch.float64), torch.rand(2, 1, s, s, dtype=torch.float64))
            for s in (128, 64, 32)
        ]
        logits = nets["dis_c"](big, stats)
        assert logits.shape == (2, 1, 1, 1)
        torch.testing.assert_close(
            logits.flatten(), fork_dis_content(big, stats, sd["dis_c"]), rtol=1e-9, atol=1e-9
        )


def test_moment_shortcut_changes_the_output(nets):
    """The fork's MS drops its results, so its G equals ours without moments; ours puts them back."""
    torch.manual_seed(2)
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64) * 2 - 1
    z = torch.randn(2, 8, dtype=torch.float64)
    sd = fork_state(nets["gen"], "gen")
    with torch.no_grad():
        content, moments = nets["enc_c"](x, "a")
        with_ms = nets["gen"](content, z, moments)
        without = nets["gen"](content, z)
        torch.testing.assert_close(without, fork_gen_pono_a(content, moments, z, sd, ms_fixed=False))
    assert (with_ms - without).abs().mean() > 1e-2


def test_concat_1_networks_run_with_moments_and_noise_only_in_training():
    torch.manual_seed(3)
    enc = init_drit_(DritContentEncoder(pono=True, dim=DIM))
    shared = DritConcatGenerator.make_shared(DIM)
    gen = init_drit_(DritConcatGenerator(shared, dim=DIM))
    enc_a = init_drit_(DritVariationalAttributeEncoder(dim=DIM))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    mu, logvar = enc_a(x)
    assert mu.shape == logvar.shape == (2, 8)
    enc.eval()
    content, moments = enc(x, "b")
    assert torch.equal(content, enc(x, "b")[0])
    enc.train()
    assert not torch.equal(enc(x, "b")[0], enc(x, "b")[0])
    y, y_plain = gen(content, mu, moments), gen(content, mu)
    assert y.shape == (2, 3, 64, 64) and (y - y_plain).abs().mean() > 1e-3
    with pytest.raises(ValueError, match="3 moment pairs"):
        gen(content, mu, moments[:2])
    with pytest.raises(ValueError, match="domain"):
        enc(x, "c")


def test_init_draws_conv_weights_from_n_0_002():
    net = init_drit_(DritGenerator())
    w = torch.cat(
        [m.weight.flatten() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    )
    assert abs(w.std().item() - 0.02) < 1e-3 and abs(w.mean().item()) < 1e-3


# ----- concat 1: G_concat_pono_ms.forward_a and E_attr_concat.forward_a -----

CONCAT_RENAMES = {
    "gen": [
        (r"^shared\.conv(\d)\.conv\.", lambda m: f"dec_share.0.model.{1 if m[1] == '1' else 5}."),
        (r"^res\.(\d)\.conv(\d)\.conv\.", lambda m: f"decA1.{m[1]}.model.{1 if m[2] == '1' else 5}."),
        (r"^up\.(\d)\.(\d)\.", lambda m: f"decA{int(m[1]) + 2}.0.model.{m[2]}."),
        (r"^out\.", "decA4.0."),
    ],
    "enc_a": [
        (r"^conv\.1\.", "conv_A.1."),
        (r"^conv\.(\d)\.conv\.2\.", r"conv_A.\1.conv.2."),
        (r"^conv\.(\d)\.conv\.5\.", r"conv_A.\1.conv.4.1."),
        (r"^conv\.(\d)\.shortcut\.1\.", r"conv_A.\1.shortcut.1."),
        (r"^fc_mu\.", "fc_A.0."),
        (r"^fc_logvar\.", "fcVar_A.0."),
    ],
}


def fork_concat_state(net: nn.Module, kind: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in net.state_dict().items():
        for pattern, repl in CONCAT_RENAMES[kind]:
            key, hits = re.subn(pattern, repl, key)
            if hits:
                break
        else:
            raise AssertionError(f"no fork name for {key}")
        layer_norm = kind == "gen" and re.match(r"decA[23]\.0\.model\.1\.", key)
        out[key] = value.view(-1, 1, 1) if layer_norm else value
    return out


def fork_gen_concat_pono_a(x, stats, z, sd):
    stats = list(stats)

    def with_z(h):
        return torch.cat([h, z[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])], 1)

    def up(h, p):
        h = F.conv_transpose2d(h, sd[p + ".0.weight"], sd[p + ".0.bias"], 2, 1, 1)
        w, b = sd[p + ".1.weight"], sd[p + ".1.bias"]
        return F.relu(F.layer_norm(h, h.shape[1:], w.expand(h.shape[1:]), b.expand(h.shape[1:])))

    h = with_z(ins_res(x, sd, "dec_share.0"))
    for i in range(3):
        h = ins_res(h, sd, f"decA1.{i}")
    mean, std = stats.pop()
    h = with_z(h * std + mean)
    h = up(h, "decA2.0.model")
    mean, std = stats.pop()
    h = with_z(h * std + mean)
    h = up(h, "decA3.0.model")
    mean, std = stats.pop()
    h = with_z(h * std + mean)
    return torch.tanh(F.conv_transpose2d(h, sd["decA4.0.weight"], sd["decA4.0.bias"]))


def fork_enc_a_concat_a(x, sd):
    h = conv(x, sd, "conv_A.1", 2, 1)
    for i in (2, 3, 4):
        p = f"conv_A.{i}"
        r = conv(
            F.leaky_relu(conv(F.leaky_relu(h, 0.2), sd, p + ".conv.2", pad=1), 0.2),
            sd,
            p + ".conv.4.1",
            pad=1,
        )
        h = F.avg_pool2d(r, 2) + conv(F.avg_pool2d(h, 2), sd, p + ".shortcut.1")
    h = F.adaptive_avg_pool2d(F.leaky_relu(h, 0.2), 1).flatten(1)
    mu = F.linear(h, sd["fc_A.0.weight"], sd["fc_A.0.bias"])
    return mu, F.linear(h, sd["fcVar_A.0.weight"], sd["fcVar_A.0.bias"])


def test_concat_1_forward_equals_the_fork_with_ms_fixed(nets):
    torch.manual_seed(4)
    gen = init_drit_(DritConcatGenerator(DritConcatGenerator.make_shared(DIM), dim=DIM)).double().eval()
    enc_a = init_drit_(DritVariationalAttributeEncoder(dim=DIM)).double().eval()
    for p in [*gen.parameters(), *enc_a.parameters()]:
        if p.dim() == 1:
            p.data.normal_(0.0, 0.1)
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        content, moments = nets["enc_c"](x, "a")
        mu, logvar = enc_a(x)
        ref_mu, ref_logvar = fork_enc_a_concat_a(x, fork_concat_state(enc_a, "enc_a"))
        torch.testing.assert_close((mu, logvar), (ref_mu, ref_logvar), rtol=1e-9, atol=1e-9)
        y = gen(content, mu, moments)
        ref = fork_gen_concat_pono_a(content, moments, mu, fork_concat_state(gen, "gen"))
        torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-9)
