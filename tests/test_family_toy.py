"""A family defined outside the package gets training, saving and inference for free.

The toy family below is one generator trained with a plain L1 loss on paired glyphs (no discriminator).
It is registered from this file only; ``train()`` runs it for 2 steps, and the run folder it writes loads
in ``TranslationPipeline``, which translates with the family's route.
"""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from PIL import Image
from test_train_run import TINY_DATA, TINY_LOOP  # tests/ is on sys.path

import ponogan.families as families
from ponogan.core.messages import UsageError
from ponogan.data import pil_to_tensor, tensor_to_pil
from ponogan.families import Family, Route, family_names, get_family, register_family
from ponogan.families.base import Batch, FamilyTrainer, create_trainer
from ponogan.inference.pipeline import TranslationPipeline
from ponogan.training import from_dict, train
from ponogan.training.losses import reconstruction_loss

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class ToyLoss:
    """Weight of the L1 term; ``gan_mode``/``gp`` are the fields every loss section carries."""

    gan_mode: str = "vanilla"
    l1: float = 1.0
    gp: float = 10.0


class ToyTrainer(FamilyTrainer):
    """One generator ``G`` (A -> B), trained on ``l1 * L1(G(A), B)``; the base ``build`` makes ``G`` from
    the spec's ``networks`` and its optimizer ``G`` (no discriminator, so no ``D``)."""

    def step(self, batch: Batch) -> dict[str, float]:
        loss = self.loss_cfg.l1 * reconstruction_loss(self.nets["G"](batch["A"]).float(), batch["B"].float())
        self.update("G", loss)
        return {"G_L1": loss.item()}

    def translate(self, real_a: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.unwrap("G")(real_a)


TOY = Family(
    name="toy_l1",
    paper="a test of the family registry",
    trainer=ToyTrainer,
    roles=("G",),
    routes={"AtoB": Route("G", "G")},
    loss=ToyLoss,
    networks=lambda a, b: [("G", "generator", a, b)],
    defaults={"model": {"generator": "unet_256", "generator_kwargs": {"ngf": 4, "num_downs": 5}}},
    folder_mode="aligned",
)


@pytest.fixture
def toy_family(monkeypatch):
    """The toy family, registered for one test only (the registry is restored afterwards)."""
    monkeypatch.setitem(families._REGISTRY, TOY.name, TOY)
    assert register_family(TOY) is TOY
    return TOY


def test_toy_family_trains_saves_and_translates(toy_family, tmp_path):
    assert TOY.name in family_names() and get_family(TOY.name) is TOY
    cfg = from_dict(
        {
            "family": TOY.name,
            "output_dir": str(tmp_path / "run"),
            "loss": {"l1": 2.0},
            "data": {**TINY_DATA, "options": {**TINY_DATA["options"], "paired": True}},
            "train": {**TINY_LOOP, "device": "cpu"},
        }
    )
    assert isinstance(cfg.loss, ToyLoss) and cfg.loss.l1 == 2.0
    assert cfg.model.generator_kwargs["ngf"] == 4 and cfg.model.init_type == "normal"  # the spec's

    result = train(cfg)
    trainer = create_trainer(cfg, Accelerator(cpu=True))
    assert list(trainer.nets) == ["G"] and list(trainer.optimizers) == ["G"]
    assert result.step == 2 and (result.run_dir / "model.safetensors").is_file()

    pipe = TranslationPipeline.from_pretrained(result.run_dir, device="cpu")
    assert pipe.family == TOY.name and pipe.directions == ("AtoB",) and not pipe.multimodal
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8), "L")
    (out,) = pipe([image])
    with torch.no_grad():  # the route's generator, applied by hand
        expected = tensor_to_pil(pipe.generators["G"](pil_to_tensor(image, pipe.input_mode())[None]))
    assert out.size == (32, 32) and out.mode == expected.mode
    assert np.abs(np.asarray(out, dtype=int) - np.asarray(expected, dtype=int)).max() <= 1


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(UsageError, match="unknown family 'nope'.*pix2pix.*cyclegan.*munit"):
        get_family("nope")
