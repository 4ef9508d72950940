"""The one batcher of inference (`images.SizeBatcher`): images of one size per batch, up to a number of
images and a pixel budget, order kept; without a budget the pipeline's batches are a plain grouping by
size, and `ponogan translate` computes what the pipeline does."""

import numpy as np
import pytest
import torch
from PIL import Image
from test_pipeline import make_run  # tests/ is on sys.path (pytest rootdir-less test modules)

from ponogan.cli import main
from ponogan.data import load_image, pil_to_tensor, tensor_to_pil
from ponogan.inference.images import SizeBatcher, batch_indices, run_batched
from ponogan.inference.pipeline import TranslationPipeline

pytestmark = pytest.mark.usefixtures("one_thread")


def test_batches_keep_order_respect_the_budget_and_never_mix_sizes():
    small, wide, big = (4, 4), (8, 4), (20, 20)  # 16, 32 and 400 pixels
    sizes = [small, wide, small, small, big, wide, small, small]
    batches = batch_indices(sizes, max_items=3, max_pixels=40)
    # a batch is sent once full: 2 small ones fit in 40 pixels, 1 wide one; the big one runs alone
    assert batches == [[1], [0, 2], [4], [5], [3, 6], [7]]
    assert sorted(i for batch in batches for i in batch) == list(range(len(sizes)))
    for batch in batches:
        assert len({sizes[i] for i in batch}) == 1 and batch == sorted(batch)
        w, h = sizes[batch[0]]
        assert len(batch) == 1 or len(batch) * w * h <= 40
    # without a pixel budget only the count limits a batch; the stride pads before counting pixels
    assert batch_indices([small] * 5, max_items=2) == [[0, 1], [2, 3], [4]]
    assert SizeBatcher(8, max_pixels=128, stride=4).capacity((5, 5)) == 2  # padded to 8x8 = 64
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        SizeBatcher(0)
    with pytest.raises(ValueError, match="max_pixels must be >= 1"):
        SizeBatcher(1, max_pixels=0)


def test_run_batched_returns_the_results_in_input_order():
    images = [Image.new("RGB", size) for size in [(4, 4), (6, 4), (4, 4), (6, 4), (4, 4)]]
    seen = []

    def function(batch):
        seen.append(len(batch))
        return [(img.size, id(img)) for img in batch]

    results = run_batched(images, function, max_items=2)
    assert results == [(img.size, id(img)) for img in images] and sorted(seen) == [1, 2, 2]


def _mixed_folder(folder, sizes):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return sorted(folder.iterdir())


def _plain_grouping(pipe, images, batch_size):
    """A plain reference: images grouped by size, each group cut into chunks of `batch_size` in input
    order, each chunk one forward of the generator."""
    by_size = {}
    for i, img in enumerate(images):
        by_size.setdefault(img.size, []).append(i)
    outputs = [None] * len(images)
    with torch.inference_mode():
        for indices in by_size.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                y = pipe.generators["G_A"](torch.stack([pil_to_tensor(images[i]) for i in chunk]))
                for i, out in zip(chunk, y, strict=True):
                    outputs[i] = np.asarray(tensor_to_pil(out))
    return outputs


def test_batched_outputs_equal_a_plain_grouping_and_translate_the_pipeline(tmp_path):
    run = make_run(tmp_path / "run", "cyclegan")
    pipe = TranslationPipeline.from_pretrained(run, device="cpu")
    sizes = [(24, 20), (32, 32), (24, 20), (17, 29), (32, 32), (24, 20), (24, 20), (32, 32)]
    paths = _mixed_folder(tmp_path / "in", sizes)
    images = [load_image(path) for path in paths]

    # without a pixel budget the batches are those of the plain grouping: the same outputs, bit for bit
    unbudgeted = pipe(images, batch_size=3, max_pixels=None)
    for output, reference in zip(unbudgeted, _plain_grouping(pipe, images, 3), strict=True):
        assert np.array_equal(np.asarray(output), reference)

    # `ponogan translate` batches as it decodes with the same batcher and budget as the pipeline
    budget = 2 * 32 * 32  # two 32x32 images (stride 4: no padding) a batch
    batched = [np.asarray(img) for img in pipe(images, batch_size=3, max_pixels=budget)]
    out = tmp_path / "out"
    args = ["--batch-size", "3", "--max-pixels", str(budget), "--workers", "1", "--dtype", "float32"]
    inputs = ["--checkpoint", str(run), "--input", str(tmp_path / "in"), "--output", str(out)]
    assert main(["translate", *inputs, *args]) == 0
    for path, expected in zip(paths, batched, strict=True):
        assert np.array_equal(np.asarray(Image.open(out / path.name)), expected), path.name
    # batching changes an output at most by the rounding to 8 bits
    for image, expected in zip(images, batched, strict=True):
        alone = np.asarray(pipe(image)).astype(int)
        assert np.abs(alone - expected).max() <= 1
