"""TranslationPipeline on tiny run folders saved through the hub: every family, odd sizes, any mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ponogan.data import create_dataset, glyph_mask, pil_to_tensor, tensor_to_pil
from ponogan.inference.images import parse_size, resize_image
from ponogan.inference.pipeline import TranslationPipeline
from ponogan.models import create_generator, save_pretrained

TINY = {
    "pix2pix": lambda: {"G": create_generator("unet_128", ngf=4, num_downs=4, shortcut="ms")},
    "cyclegan": lambda: {
        "G_A": create_generator("resnet_6blocks", ngf=4, n_blocks=1, shortcut="ms"),
        "G_B": create_generator("resnet_6blocks", ngf=4, n_blocks=1, shortcut="ms"),
    },
    "munit": lambda: {
        "gen_a": create_generator("munit", dim=4, n_res=1, mlp_dim=8, style_dim=4),
        "gen_b": create_generator("munit", dim=4, n_res=1, mlp_dim=8, style_dim=4),
    },
}


pytestmark = pytest.mark.usefixtures("one_thread")


def make_run(run_dir, family: str, generators=None, **config):
    """A run folder with untrained tiny generators of `family` (shared by the translate/app tests)."""
    torch.manual_seed(0)
    generators = generators or TINY[family]()
    data = {"mode": "glyphs", "image_size": 32, "font_a": "DejaVuSans", "font_b": "DejaVuSerif-Bold"}
    return save_pretrained(run_dir, generators, {"family": family, "data": data, "step": 3, **config})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {family: make_run(root / family, family) for family in TINY}


@pytest.fixture(scope="module")
def pipes(runs):
    return {family: TranslationPipeline.from_pretrained(path, device="cpu") for family, path in runs.items()}


def _odd_images():
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (21, 33, 3), dtype=np.uint8), "RGB")
    gray = Image.fromarray(rng.integers(0, 256, (40, 17), dtype=np.uint8), "L")
    rgba = Image.fromarray(rng.integers(0, 256, (21, 33, 4), dtype=np.uint8), "RGBA")
    palette = rgb.convert("P")
    return [rgb, gray, rgba, palette]


@pytest.mark.parametrize("family", ["pix2pix", "cyclegan"])
def test_feedforward_matches_generator(pipes, family):
    pipe = pipes[family]
    images = _odd_images()
    for direction in pipe.directions:
        route = pipe.route(direction)
        outputs = pipe(images, direction=direction, batch_size=2)
        assert [o.size for o in outputs] == [img.size for img in images]
        assert all(o.mode == "RGB" for o in outputs)
        for img, out in zip(images, outputs, strict=True):
            with torch.inference_mode():
                expected = pipe.generators[route.source](pil_to_tensor(img, "RGB")[None])[0]
            diff = np.abs(np.asarray(out, np.int16) - np.asarray(tensor_to_pil(expected), np.int16))
            assert diff.max() <= 1


def test_directions_and_family(pipes):
    assert pipes["pix2pix"].directions == ("AtoB",)
    assert pipes["cyclegan"].directions == ("AtoB", "BtoA")
    assert pipes["munit"].family == "munit" and pipes["munit"].multimodal
    assert pipes["pix2pix"].config["step"] == 3


def test_cyclegan_directions_use_different_generators(pipes):
    img = _odd_images()[0]
    a, b = pipes["cyclegan"]([img], "AtoB")[0], pipes["cyclegan"]([img], "BtoA")[0]
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_batching_does_not_change_results(pipes):
    images = [_odd_images()[0]] * 3 + [_odd_images()[1]]
    one = pipes["cyclegan"](images, batch_size=1)
    many = pipes["cyclegan"](images, batch_size=8)
    for x, y in zip(one, many, strict=True):
        assert np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max() <= 1


def test_grayscale_model_takes_any_mode(tmp_path):
    net = create_generator("unet_128", ngf=4, num_downs=4, shortcut="ms", in_channels=1, out_channels=1)
    gens = {"G": net}
    pipe = TranslationPipeline.from_pretrained(make_run(tmp_path / "gray", "pix2pix", gens), device="cpu")
    assert pipe.input_mode() == "L"
    outputs = pipe(_odd_images())
    assert all(o.mode == "L" for o in outputs)
    assert [o.size for o in outputs] == [img.size for img in _odd_images()]


def test_rgba_is_composited_on_white(pipes):
    transparent = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    white = Image.new("RGB", (20, 20), (255, 255, 255))
    pipe = pipes["pix2pix"]
    assert np.array_equal(np.asarray(pipe(transparent)), np.asarray(pipe(white)))


def test_size_option_resizes(pipes):
    img = _odd_images()[0]  # 33 x 21
    assert pipes["pix2pix"]([img], size=42)[0].size == (66, 42)
    assert pipes["pix2pix"]([img], size="16x24")[0].size == (16, 24)
    assert parse_size("64x48") == (64, 48) and parse_size(64) == 64 and parse_size(None) is None
    assert resize_image(img, None) is img
    with pytest.raises(ValueError, match="256 or 320x240"):
        parse_size("big")
    with pytest.raises(ValueError, match="positive"):
        parse_size(0)


def test_munit_n_styles_and_seed(pipes):
    pipe = pipes["munit"]
    images = _odd_images()[:2]
    outputs = pipe(images, n_styles=3, seed=7)
    assert len(outputs) == 6
    assert [o.size for o in outputs] == [images[0].size] * 3 + [images[1].size] * 3
    assert len({np.asarray(o).tobytes() for o in outputs[:3]}) == 3  # distinct styles
    again = pipe(images, n_styles=3, seed=7)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(outputs, again, strict=True))
    other = pipe(images, n_styles=3, seed=8)
    assert not np.array_equal(np.asarray(outputs[0]), np.asarray(other[0]))


def test_munit_styles_are_standard_normal_draws(pipes):
    pipe = pipes["munit"]
    img = _odd_images()[0]
    styles = torch.randn(2, 4, 1, 1, generator=torch.Generator().manual_seed(3))
    x = pil_to_tensor(img, "RGB")[None]
    with torch.inference_mode():
        content, moments, _ = pipe.generators["gen_a"].encode(x)
        expected = pipe.generators["gen_b"].decode(content, moments, styles[1:2], size=x.shape[-2:])[0]
    out = pipe([img], n_styles=2, seed=3)[1]
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(tensor_to_pil(expected), np.int16))
    assert diff.max() <= 1


def test_munit_reference_style(pipes):
    pipe = pipes["munit"]
    img, ref = _odd_images()[0], _odd_images()[1]
    x, r = pil_to_tensor(img, "RGB")[None], pil_to_tensor(ref, "RGB")[None]
    with torch.inference_mode():
        content, moments, _ = pipe.generators["gen_b"].encode(x)
        style = pipe.generators["gen_a"].encode(r)[2]
        expected = pipe.generators["gen_a"].decode(content, moments, style, size=x.shape[-2:])[0]
    [out] = pipe([img], direction="BtoA", style=ref)
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(tensor_to_pil(expected), np.int16))
    assert diff.max() <= 1
    codes = pipe([img], style=torch.zeros(2, 4))
    assert len(codes) == 2


def test_moments_match_the_encoder(pipes):
    pipe = pipes["cyclegan"]
    img = _odd_images()[0]
    levels = pipe.moments(img)
    with torch.inference_mode():
        expected = pipe.generators["G_A"].extract_moments(pil_to_tensor(img, "RGB")[None])
    assert len(levels) == len(expected) == 2
    for (mean, std), (e_mean, e_std) in zip(levels, expected, strict=True):
        np.testing.assert_allclose(mean, e_mean[0, 0].numpy(), atol=1e-6)
        np.testing.assert_allclose(std, e_std[0, 0].numpy(), atol=1e-6)
        assert (std > 0).all()
    images = pipe.moments(img, as_images=True)
    assert images[0][0].mode == "L" and images[0][0].size == (levels[0][0].shape[1], levels[0][0].shape[0])
    assert len(pipes["munit"].moments(img, "BtoA")) >= 1


def test_moments_empty_without_shortcut(tmp_path):
    gens = {"G": create_generator("unet_128", ngf=4, num_downs=4, shortcut=None)}
    pipe = TranslationPipeline.from_pretrained(make_run(tmp_path / "plain", "pix2pix", gens), device="cpu")
    assert pipe.moments(_odd_images()[0]) == []


def test_bf16_autocast_close_to_fp32(runs, pipes):
    pipe16 = TranslationPipeline.from_pretrained(runs["cyclegan"], device="cpu", dtype="bf16")
    assert pipe16.dtype == torch.bfloat16
    img = _odd_images()[0]
    a, b = np.asarray(pipes["cyclegan"](img), np.float32), np.asarray(pipe16(img), np.float32)
    assert np.abs(a - b).mean() < 8


def test_bad_direction_and_options(pipes):
    img = _odd_images()[0]
    with pytest.raises(ValueError, match="'BtoA' is not available for a pix2pix checkpoint; valid: AtoB"):
        pipes["pix2pix"]([img], direction="BtoA")
    with pytest.raises(ValueError, match="MUNIT checkpoints only"):
        pipes["cyclegan"]([img], n_styles=2)
    with pytest.raises(ValueError, match="MUNIT checkpoints only"):
        pipes["pix2pix"]([img], style=img)
    with pytest.raises(ValueError, match="photo.png"):  # a path that is not there: the loader's one line
        pipes["pix2pix"]([img, "photo.png"])
    with pytest.raises(TypeError, match="image 1 is a dict"):
        pipes["pix2pix"]([img, {}])
    with pytest.raises(ValueError, match="batch_size"):
        pipes["pix2pix"]([img], batch_size=0)
    with pytest.raises(ValueError, match="style_dim=4"):
        pipes["munit"]([img], style=torch.zeros(3))


def test_wrong_checkpoints(tmp_path, runs):
    pickle = tmp_path / "model.pth"
    pickle.write_bytes(b"\x80\x04fake pickle")
    with pytest.raises(ValueError, match="not a safetensors file"):
        TranslationPipeline.from_pretrained(pickle)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TranslationPipeline.from_pretrained(tmp_path / "nowhere")
    odd = make_run(tmp_path / "odd", "stargan", TINY["pix2pix"]())
    with pytest.raises(ValueError, match="family 'stargan' is not supported"):
        TranslationPipeline.from_pretrained(odd, device="cpu")
    half = make_run(tmp_path / "half", "cyclegan", TINY["pix2pix"]())
    with pytest.raises(ValueError, match="lacks generator"):
        TranslationPipeline.from_pretrained(half, device="cpu")
    with pytest.raises(ValueError, match="unknown dtype"):
        TranslationPipeline.from_pretrained(runs["pix2pix"], device="cpu", dtype="int8")
    # accelerate's "no" (translate's --mixed-precision no) is full precision
    full = TranslationPipeline.from_pretrained(runs["pix2pix"], device="cpu", dtype="no")
    assert full.dtype == torch.float32


def test_from_weights_file_and_device(runs):
    pipe = TranslationPipeline.from_pretrained(runs["pix2pix"] / "model.safetensors", device="cpu")
    assert pipe.family == "pix2pix" and pipe.device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            TranslationPipeline.from_pretrained(runs["pix2pix"], device="cuda")
        with pytest.raises(ValueError, match="CUDA is not available"):
            pipe.to("cuda:1")
        assert pipe.device.type == "cpu"


SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.mark.parametrize(
    "name", ["demo_pix2pix_pono_ms_glyphs", "demo_cyclegan_pono_ms_glyphs", "demo_cut_pono_ms_glyphs"]
)
def test_shipped_demo_translates_held_out_glyphs(name):
    """The shipped demos load and map held-out DejaVu Sans glyphs close to their DejaVu Serif Bold targets."""
    run = SHIPPED / name
    if not (run / "model.safetensors").is_file():
        pytest.skip(f"{run} not present (shipped demo models live in git)")
    pipe = TranslationPipeline.from_pretrained(run, device="cpu")
    test_set = create_dataset("glyphs", None, "test", image_size=pipe.config["data"]["image_size"])
    items = [test_set[i] for i in range(0, len(test_set), 8)]  # one placement of each held-out character
    outputs = pipe([tensor_to_pil(item["A"]) for item in items])

    def iou(mask, target):
        return ((mask * target).sum() / (mask + target - mask * target).sum()).item()

    # glyph-mask IoU with the target: the translation must beat copying the input (bold serif != sans)
    pairs = zip(outputs, items, strict=True)
    model = [iou(glyph_mask(pil_to_tensor(y)), item["B_mask"]) for y, item in pairs]
    identity = [iou(glyph_mask(item["A"]), item["B_mask"]) for item in items]
    assert np.mean(model) > np.mean(identity) + 0.05


# --- test-time mode: eval (running statistics, no dropout) vs paper (pix2pix's test time) ---


def _bn_dropout_unet(use_dropout=True):
    """A tiny U-Net with BatchNorm and (with num_downs 6) dropout 0.5 on decoder level 4, with running
    statistics far from any batch's, as after training."""
    torch.manual_seed(0)
    net = create_generator("unet_128", ngf=4, num_downs=6, shortcut="ms", use_dropout=use_dropout)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(7)
    return net


@pytest.fixture(scope="module")
def bn_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("bn") / "unet", "pix2pix", {"G": _bn_dropout_unet()})


def _same(a: Image.Image, b: Image.Image) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_paper_mode_uses_batch_statistics_and_dropout_without_touching_running_stats(bn_run):
    pipe = TranslationPipeline.from_pretrained(bn_run, device="cpu")
    assert pipe.test_mode == "eval" and pipe.test_mode_matters
    before = {k: v.clone() for k, v in pipe.generators["G"].state_dict().items()}
    a = _odd_images()[0]
    b = a.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # same size: batched together with a

    evals = [pipe([a, b])[0], pipe([a])[0], pipe([b, a, b], batch_size=3)[1]]
    assert all(_same(evals[0], out) for out in evals)  # deterministic, independent of the batch
    paper = pipe([a], test_mode="paper", seed=1)[0]
    assert not _same(paper, evals[0])
    assert _same(paper, pipe([a], test_mode="paper", seed=1)[0])  # seeded: reproducible
    assert _same(paper, pipe([b, a], test_mode="paper", seed=1, batch_size=2)[1])  # its own test batch
    assert not _same(paper, pipe([a], test_mode="paper", seed=2)[0])  # another dropout draw
    unseeded = [pipe([a], test_mode="paper")[0] for _ in range(2)]
    assert not _same(*unseeded)  # dropout is on: fresh noise each call

    after = pipe.generators["G"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats never updated
    assert not any(m.training for m in pipe.generators["G"].modules())  # the loaded net stays in eval
    assert _same(pipe([a])[0], evals[0])


def test_paper_mode_batchnorm_is_the_images_own_statistics(tmp_path):
    """Without dropout, paper mode equals the generator in train mode run on the image alone."""
    net = _bn_dropout_unet(use_dropout=False)
    pipe = TranslationPipeline.from_pretrained(
        make_run(tmp_path / "bn", "pix2pix", {"G": net}), device="cpu", test_mode="paper"
    )
    img = _odd_images()[0]
    reference = _bn_dropout_unet(use_dropout=False).train()
    with torch.no_grad():
        expected = reference(pil_to_tensor(img, "RGB")[None])[0]
    out = pipe([img, _odd_images()[1]], seed=None)[0]
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(tensor_to_pil(expected), np.int16))
    assert diff.max() <= 1
    assert not _same(out, pipe([img], test_mode="eval")[0])


def test_test_mode_is_a_no_op_without_batchnorm_or_dropout(pipes):
    img = _odd_images()[0]
    for family in ("cyclegan", "munit"):
        pipe = pipes[family]
        assert not pipe.test_mode_matters
        kwargs = {"seed": 3} if family == "munit" else {}
        assert _same(pipe([img], test_mode="paper", **kwargs)[0], pipe([img], test_mode="eval", **kwargs)[0])


def test_bad_test_mode(runs, pipes):
    with pytest.raises(ValueError, match="test_mode must be one of eval, paper, got 'train'"):
        TranslationPipeline.from_pretrained(runs["pix2pix"], device="cpu", test_mode="train")
    with pytest.raises(ValueError, match="test_mode must be one of eval, paper"):
        pipes["pix2pix"](_odd_images()[0], test_mode="batch")


def test_pipeline_accepts_arrays_tensors_and_paths(pipes, tmp_path):
    pipe = pipes["cyclegan"]
    rng = np.random.default_rng(3)
    array = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    image.save(tmp_path / "x.png")
    want = np.asarray(pipe([image])[0])
    single = pipe(image)
    assert isinstance(single, Image.Image) and np.array_equal(np.asarray(single), want)
    assert np.array_equal(np.asarray(pipe(tmp_path / "x.png")), want)
    assert np.array_equal(np.asarray(pipe(str(tmp_path / "x.png"))), want)
    assert np.array_equal(np.asarray(pipe(array)), want)
    tensor01 = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    assert np.array_equal(np.asarray(pipe(tensor01)), want)
    assert np.array_equal(np.asarray(pipe(tensor01 * 2 - 1)), want)  # the models' [-1, 1] range
    batch = pipe(np.stack([array, array]))
    assert isinstance(batch, list) and len(batch) == 2 and np.array_equal(np.asarray(batch[1]), want)
    assert len(pipe(torch.stack([tensor01, tensor01]))) == 2 and len(pipe([image])) == 1
    with pytest.raises(TypeError, match="give a PIL image, a path"):
        pipe(3.5)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, 1\|3\|4\)"):
        pipe(np.zeros((4, 5, 7), np.uint8))


def test_pipeline_to_and_repr(runs):
    pipe = TranslationPipeline.from_pretrained(runs["cyclegan"], device="cpu")
    assert pipe.to("cpu") is pipe and str(pipe.device) == "cpu"
    text = repr(pipe)
    assert "family=cyclegan" in text and "G_A: ResnetGenerator(" in text and "dtype=float32" in text
    assert "device=cpu" in text and "AtoB/BtoA" in text


@pytest.fixture(scope="module")
def demo_pipe():
    return TranslationPipeline.from_pretrained(SHIPPED / "demo_pix2pix_pono_ms_glyphs", device="cpu")


def test_pipeline_applies_the_cli_pixel_limit(demo_pipe):
    from ponogan.core.settings import MAX_PROCESSED_PIXELS
    from ponogan.inference.images import ImageTooLargeError

    glyph = Image.new("RGB", (64, 64), "white")
    with pytest.raises(
        ImageTooLargeError, match="20032x20032 = .*max_pixels=2,097,152; pass a smaller size="
    ):
        demo_pipe(glyph, size=20000)  # refused from the sizes: nothing of 25 GB is allocated
    with pytest.raises(ImageTooLargeError, match="max_pixels=1,000"):
        demo_pipe(glyph, max_pixels=1000)
    assert demo_pipe(glyph, max_pixels=None).size == (64, 64)  # the limit can be lifted
    assert demo_pipe(glyph, size=96, max_pixels=MAX_PROCESSED_PIXELS).size == (96, 96)
    with pytest.raises(ValueError, match="max_pixels must be >= 1"):
        demo_pipe(glyph, max_pixels=0)


@pytest.mark.parametrize(
    "empty",
    [
        torch.zeros(3, 0, 64),
        torch.zeros(1, 3, 64, 0),
        np.zeros((0, 64, 3), np.uint8),
        Image.new("RGB", (0, 8)),
    ],
    ids=["tensor", "batch", "array", "pil"],
)
def test_pipeline_refuses_empty_images_in_one_value_error(demo_pipe, empty):
    with pytest.raises(ValueError, match="is empty") as caught:
        demo_pipe(empty)
    assert "\n" not in str(caught.value) and "reduction" not in str(caught.value)


def test_pipeline_seeds_are_range_checked(pipes):
    img = _odd_images()[0]
    for seed in (2**64, -1, 1.5, True):
        with pytest.raises(ValueError, match="seed must be an integer from 0 to 18446744073709551615"):
            pipes["munit"](img, seed=seed)
    assert len(pipes["munit"](img, seed=2**64 - 1, n_styles=2)) == 2


def test_multi_frame_images_warn_that_the_first_frame_is_translated(demo_pipe, tmp_path):
    frames = [Image.new("RGB", (64, 64), colour) for colour in ("white", "black", "grey")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with Image.open(tmp_path / "anim.gif") as animated, pytest.warns(UserWarning, match="first frame"):
        out = demo_pipe(animated)
    assert out.size == (64, 64)
    with pytest.warns(UserWarning, match="several frames"):
        demo_pipe([tmp_path / "anim.gif"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a still image: no warning
        demo_pipe(frames[0])


def test_too_small_style_image_is_reported_with_its_own_size(pipes):
    content = _odd_images()[0]  # 33x21
    with pytest.raises(ValueError, match="the style image of 2x2 is too small") as caught:
        pipes["munit"](content, style=Image.new("RGB", (2, 2)))
    assert "33x21" not in str(caught.value)
