"""The base ``FamilyTrainer.build`` makes a family's networks from its spec alone: the nets of
``Family.networks`` with the spec's channels, the run-state names resume relies on (``<net>.<param>``),
and the Adams ``G`` / ``D`` over the generators' / discriminators' parameters in spec order."""

import pytest
from test_train_fidelity import build, config, layers  # tests/ is on sys.path

from ponogan.families import get_family

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "family, names",
    [
        ("pix2pix", ["G", "D"]),
        ("cyclegan", ["G_A", "G_B", "D_A", "D_B"]),
        ("munit", ["gen", "dis_a", "dis_b"]),  # both auto-encoders behind one MunitPair
    ],
)
def test_base_build_follows_the_spec(family, names):
    channels = {"data.options.input_nc": 1, "data.options.output_nc": 3}  # unequal: each net's own
    if family == "cyclegan":
        channels["loss.identity"] = 0.0  # the identity loss needs equal channels
    trainer = build(config(family, shortcut=None, **channels))
    assert list(trainer.nets) == names and list(trainer.optimizers) == ["G", "D"]
    shapes = get_family(family).networks(1, 3)
    by_role = dict(trainer.generators())
    by_role.update({role: trainer.nets[role] for role, kind, _, _ in shapes if kind == "discriminator"})
    for role, _, in_channels, _ in shapes:
        assert layers(by_role[role])[0].in_channels == in_channels, role  # e.g. pix2pix's D sees A and B
    for opt, kind in (("G", "generator"), ("D", "discriminator")):
        expected = [p for role, k, _, _ in shapes if k == kind for p in by_role[role].parameters()]
        (group,) = trainer.optimizers[opt].param_groups
        assert len(group["params"]) == len(expected)
        assert all(a is b for a, b in zip(group["params"], expected, strict=True)), opt
    if family == "munit":
        keys = trainer.nets["gen"].state_dict()
        assert any(k.startswith("gen_a.") for k in keys) and any(k.startswith("gen_b.") for k in keys)
