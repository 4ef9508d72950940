"""CUT's no-crop-in-decay rule (``data.options.crop_in_decay: false``): the train items switch from a
random crop to the whole image resized to ``crop_size`` at the first epoch wholly inside the ``linear``
decay, and a run resumed inside the decay gets the same batches as one that never stopped."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_train_run import nets_of, tiny  # tests/ is on sys.path (pytest rootdir-less test modules)

from ponogan.data import create_dataset, pil_to_tensor
from ponogan.data.transforms import decay_options
from ponogan.training import train
from ponogan.training.batch_order import Batches
from ponogan.training.config import OptimConfig
from ponogan.training.schedules import decay_start_step

pytestmark = pytest.mark.usefixtures("one_thread")


def noise_images(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` RGB noise images of ``size = (w, h)``: no two crops of one look alike."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def whole(path: str, side: int) -> torch.Tensor:
    """The image resized to ``side x side`` with no crop, as an item tensor ``(3, side, side)``."""
    return pil_to_tensor(Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BICUBIC))


def test_the_crop_stops_at_the_first_epoch_wholly_in_the_decay(tmp_path):
    noise_images(tmp_path / "data", 8, (40, 40))
    opts = {"load_size": 36, "crop_size": 32, "no_flip": True}
    data = create_dataset("single", tmp_path / "data", "train", **opts, crop_in_decay=False)
    # 8 items in batches of 2: 4 batches an epoch; the decay starts at batch 6, inside epoch 1
    batches = Batches(data, batch_size=2, seed=1, decay_batch=6, num_workers=1)
    assert batches.decay_epoch == 2 and [batches.in_decay(e) for e in range(4)] == [False, False, True, True]
    stream = iter(batches)
    for epoch in range(3):
        for _ in range(batches.per_epoch):
            batch = next(stream)  # the worker process got the dataset with its epoch's options
            for path, item in zip(batch["A_path"], batch["A"], strict=True):
                assert item.shape == (3, 32, 32)
                assert torch.equal(item, whole(path, 32)) == (epoch == 2), (epoch, path)
    assert data.item_options.load_size == 32 and data.options.load_size == 36

    # the default keeps the crop; without a decay (other lr policies) no epoch is a decay epoch
    kept = create_dataset("single", tmp_path / "data", "train", **opts)
    kept.set_decay(True)
    assert kept.item_options is kept.options
    assert not Batches(data, batch_size=2, seed=1).in_decay(100)
    assert decay_start_step(OptimConfig(lr_policy="step"), 100) is None
    assert decay_start_step(OptimConfig(decay_start=0.5), 10) == 5
    # only the resize step changes: flips as they were; `crop` has no resize step, so it keeps its crop
    cut = decay_options(data.options.replace(no_flip=False))
    assert (cut.load_size, cut.crop_size, cut.no_flip) == (32, 32, False)
    assert decay_options(data.options.replace(preprocess="crop")).load_size == 36


@pytest.mark.slow
def test_a_run_resumed_inside_the_decay_equals_an_uninterrupted_one(tmp_path):
    # aligned pairs 36x36 each; 4 items in batches of 2 = 2 batches an epoch; 6 steps with the decay
    # from step 3: epochs 0-1 (steps 1-4) crop, epoch 2 (steps 5-6) takes whole images. The run is
    # stopped at step 5 (epoch 2, batch 1) and resumed to 6.
    noise_images(tmp_path / "pairs" / "train", 4, (72, 36))
    common = {
        "data.mode": "aligned",
        "data.root": str(tmp_path / "pairs"),
        "data.options.load_size": 36,
        "data.options.crop_size": 32,
        "data.options.crop_in_decay": False,
        "train.max_steps": 6,
        "train.save_every": 4,
        "train.keep_last": 3,
        "optim.decay_start": 0.5,
    }
    train(tiny("pix2pix", tmp_path / "full", **common))
    first = train(tiny("pix2pix", tmp_path / "part", **common, **{"train.stop_at_step": 5}))
    assert first.step == 5
    meta = json.loads((tmp_path / "part" / "state" / "step_000005" / "trainer_state.json").read_text())
    assert (meta["epoch"], meta["batch"]) == (2, 1)  # inside the decay epoch
    second = train(tiny("pix2pix", tmp_path / "part", **common, **{"train.resume": True}))
    assert second.step == 6
    full, resumed = nets_of(tmp_path / "full", 6), nets_of(tmp_path / "part", 6)
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    # the same run keeping its crop is the same up to the decay epoch and ends elsewhere
    train(tiny("pix2pix", tmp_path / "cropped", **{**common, "data.options.crop_in_decay": True}))
    before, cropped = nets_of(tmp_path / "cropped", 4), nets_of(tmp_path / "cropped", 6)
    assert all(torch.equal(before[k], value) for k, value in nets_of(tmp_path / "full", 4).items())
    assert any(not torch.equal(cropped[k], full[k]) for k in full)
