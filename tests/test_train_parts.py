"""Training parts on their own: data order, image pool, LR schedules, checkpoint files, RNG, sample grid."""

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from ponogan.training.batch_order import Batches
from ponogan.training.config import OptimConfig
from ponogan.training.image_pool import ImagePool
from ponogan.training.samples import labelled_grid, save_png
from ponogan.training.schedules import make_scheduler
from ponogan.training.state import (
    TrainingState,
    capture_rng,
    latest_state,
    list_states,
    load_state,
    preserved_rng,
    restore_rng,
    save_state,
)


class _Recorded(torch.utils.data.Dataset):
    """Items ``0..n-1`` that remember which ones were loaded."""

    def __init__(self, n: int):
        self.n, self.loaded = n, []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        self.loaded.append(index)
        return index


def _old_order(n: int, batch: int, world: int, rank: int, seed: int, epoch: int, start: int) -> list:
    """The batches the hand-written sampler of earlier versions gave: ``randperm(n)`` seeded ``seed + epoch``,
    cut to a multiple of ``batch * world``, dealt ``[rank::world]``, from batch ``start`` on."""
    per_epoch = n // (batch * world)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
    mine = perm[: per_epoch * batch * world][rank::world].tolist()
    return [mine[i : i + batch] for i in range(start * batch, per_epoch * batch, batch)]


# (items, batch size, processes, rank, epoch, first batch)
ORDERS = [
    (10, 2, 1, 0, 0, 0),
    (10, 2, 2, 0, 1, 0),
    (10, 2, 2, 1, 0, 1),
    (13, 3, 2, 1, 2, 1),
    (7, 1, 3, 2, 1, 1),
]


@pytest.mark.parametrize("n, batch, world, rank, epoch, start", ORDERS)
def test_data_order_is_that_of_earlier_versions_so_old_runs_resume_alike(n, batch, world, rank, epoch, start):
    data = _Recorded(n)
    batches = Batches(data, batch_size=batch, seed=3, rank=rank, world_size=world)
    batches.seek(epoch, start)
    stream = iter(batches)
    left = _old_order(n, batch, world, rank, 3, epoch, start)
    assert [next(stream).tolist() for _ in left] == left
    assert data.loaded == [i for b in left for i in b]  # the skipped batches were never loaded
    assert (batches.epoch, batches.batch) == (epoch + 1, 0)
    assert next(stream).tolist() == _old_order(n, batch, world, rank, 3, epoch + 1, 0)[0]


def test_data_order_shards_are_disjoint_and_change_every_epoch():
    def epoch_of(rank: int, epoch: int) -> list[int]:
        batches = Batches(list(range(10)), batch_size=2, seed=3, rank=rank, world_size=2)
        batches.seek(epoch, 0)
        stream = iter(batches)
        return [i for _ in range(batches.per_epoch) for i in next(stream).tolist()]

    shards = [epoch_of(0, 0), epoch_of(1, 0)]
    assert all(len(s) == 4 for s in shards) and not set(shards[0]) & set(shards[1])
    assert epoch_of(0, 1) != shards[0]


def test_data_position_outside_the_epoch_and_too_little_data_are_refused():
    batches = Batches(list(range(12)), batch_size=3, seed=0)
    with pytest.raises(ValueError, match="outside this data's 4 batches per epoch"):
        batches.seek(0, 4)
    with pytest.raises(ValueError, match="3 items, fewer than one batch per process"):
        Batches(list(range(3)), batch_size=2, seed=0, world_size=2)


def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(2)
    a, b = torch.full((1, 1, 2, 2), 1.0), torch.full((1, 1, 2, 2), 2.0)
    assert torch.equal(pool.query(torch.cat([a, b])), torch.cat([a, b]))  # filling: returned as is
    torch.manual_seed(0)
    outs = [pool.query(torch.full((1, 1, 2, 2), 10.0 + i)).flatten()[0].item() for i in range(200)]
    swapped = sum(o < 10.0 + i for i, o in enumerate(outs))  # an older image came back
    assert 70 < swapped < 130
    empty = ImagePool(0)  # pool size 0: no history, every query returns its own input
    assert torch.equal(empty.query(a), a) and len(empty.images) == 0
    with pytest.raises(ValueError, match=">= 0"):
        ImagePool(-1)


def test_image_pool_state_round_trip_reproduces_its_draws():
    pool = ImagePool(3)
    pool.query(torch.randn(3, 2, 4, 4))
    copy = ImagePool(3)
    copy.load_state_dict(pool.state_dict())
    x = torch.randn(4, 2, 4, 4)
    torch.manual_seed(5)
    first = pool.query(x)
    torch.manual_seed(5)
    assert torch.equal(copy.query(x), first)
    with pytest.raises(ValueError, match="holds 3 images"):
        ImagePool(5).load_state_dict(pool.state_dict())


def _lrs(policy: str, steps: int, **kw) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, OptimConfig(lr_policy=policy, **kw), steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_lr_schedules_match_their_formulas():
    # linear: 1 until decay_start * max_steps = 4, then 1 - (step - 4) / (8 - 4 + 1)
    assert _lrs("linear", 8, decay_start=0.5) == pytest.approx([1, 1, 1, 1, 1, 0.8, 0.6, 0.4])
    assert _lrs("step", 5, step_size=2, gamma=0.5) == pytest.approx([1, 1, 0.5, 0.5, 0.25])
    assert _lrs("constant", 3) == [1.0, 1.0, 1.0]


def test_rng_capture_restore_covers_python_numpy_torch():
    state = capture_rng()
    first = (random.random(), np.random.rand(), torch.rand(2))
    restore_rng(state)
    second = (random.random(), np.random.rand(), torch.rand(2))
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])
    restore_rng(state)
    with preserved_rng():  # draws inside the block do not move the streams
        random.random(), np.random.rand(5), torch.rand(100)
    third = (random.random(), np.random.rand(), torch.rand(2))
    assert first[:2] == third[:2] and torch.equal(first[2], third[2])


def _state(seed: int) -> TrainingState:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    sched = make_scheduler(opt, OptimConfig(lr_policy="linear"), 10)
    net(torch.randn(2, 1, 5, 5)).sum().backward()
    opt.step()
    sched.step()
    return TrainingState(nets={"G": net}, optimizers={"G": opt}, schedulers={"G": sched})


def _save(run, step, state, keep_last=2):
    return save_state(
        run,
        step,
        state,
        meta={"epoch": 0, "batch": step},
        rank_state={"rng": capture_rng()},
        rank=0,
        world_size=1,
        barrier=lambda: None,
        keep_last=keep_last,
    )


def test_checkpoint_round_trip_restores_nets_optimizers_schedulers(tmp_path):
    saved = _state(0)
    path = _save(tmp_path, 1, saved)  # its scheduler stepped once: step 1 (load_state checks the counts)
    assert path.name == "step_000001" and latest_state(tmp_path) == path
    fresh = _state(1)
    on_disk = load_file(str(path / "nets.safetensors"))
    assert on_disk.keys() == {f"G.{k}" for k in saved.nets["G"].state_dict()}
    assert any(not torch.equal(v, on_disk[f"G.{k}"]) for k, v in fresh.nets["G"].state_dict().items())
    meta, rank_state = load_state(path, fresh, rank=0, world_size=1)
    assert meta["step"] == 1 and meta["batch"] == 1 and "rng" in rank_state
    for key, value in saved.nets["G"].state_dict().items():
        assert torch.equal(on_disk[f"G.{key}"], value), key
        assert torch.equal(fresh.nets["G"].state_dict()[key], value), key
    a, b = saved.optimizers["G"].state_dict(), fresh.optimizers["G"].state_dict()
    assert all(torch.equal(a["state"][0][k], b["state"][0][k]) for k in ("exp_avg", "exp_avg_sq"))
    assert fresh.schedulers["G"].state_dict()["last_epoch"] == 1
    with pytest.raises(RuntimeError, match="written by 1 process"):
        load_state(path, fresh, rank=0, world_size=2)


def test_checkpoints_are_atomic_and_only_the_last_k_are_kept(tmp_path):
    state = _state(0)
    for step in (1, 2, 3):
        _save(tmp_path, step, state)
    assert [p.name for p in list_states(tmp_path)] == ["step_000002", "step_000003"]
    # a crash mid-write leaves only a temp folder: never picked as the latest
    (tmp_path / "state" / ".tmp-step_000004").mkdir()
    (tmp_path / "state" / "step_000005").mkdir()  # no trainer_state.json: incomplete
    assert latest_state(tmp_path).name == "step_000003"
    # a stale pointer falls back to the newest complete state
    (tmp_path / "state" / "latest").write_text("step_000009\n")
    assert latest_state(tmp_path).name == "step_000003"
    assert json.loads((tmp_path / "state" / "step_000003" / "trainer_state.json").read_text())["step"] == 3


def test_training_state_files_load_with_weights_only(tmp_path):
    path = _save(tmp_path, 1, _state(0))
    loaded = {
        name: torch.load(path / name, weights_only=True)
        for name in ("optimizers.pt", "schedulers.pt", "rank_0.pt")
    }
    assert all(isinstance(v, dict) and v for v in loaded.values())
    assert "rng" in loaded["rank_0.pt"] and "torch" in str(sorted(loaded["rank_0.pt"]["rng"]))


def test_sample_grid_layout_and_grayscale(tmp_path):
    x = torch.zeros(3, 1, 8, 8)
    # black | grey | white triplets, two per row, under a header row of labels
    image = labelled_grid([("input", x - 1), ("output", x), ("target", x + 1)])
    header = image.height - (2 + 2 * 10)
    assert image.width == 2 + 6 * 10 and header > 0
    assert [image.getpixel((col, header + 2)) for col in (2, 12, 22)] == [(0,) * 3, (128,) * 3, (255,) * 3]
    path = save_png(tmp_path / "s" / "a.png", labelled_grid([("input", x), ("output", x)]))
    assert path.is_file() and not list((tmp_path / "s").glob(".*"))
    with pytest.raises(ValueError, match="equally sized"):
        labelled_grid([("input", x), ("output", torch.zeros(2, 1, 8, 8))])
