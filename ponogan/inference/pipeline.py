"""Inference with a trained translator: a checkpoint in, PIL images in, PIL images out.

`TranslationPipeline.from_pretrained(run)` rebuilds the generators of a run folder (or its
`model.safetensors`) with `ponogan.models.hub.load_pretrained`, which never unpickles anything.
Calling the pipeline converts every image to the model's channel count, groups images of the same size
into batches (`images.SizeBatcher`, the batcher of `ponogan translate` too), runs them under
`torch.inference_mode` (optionally bf16 autocast) and returns PIL images of the input size: the
generators pad to their stride multiple and crop back themselves. The image helpers (accepted
inputs, sizes, limits) live in `ponogan.inference.images`.

Directions per family (see docs/architecture.md, "Checkpoint roles"):

| family   | AtoB                          | BtoA                          |
|----------|-------------------------------|-------------------------------|
| pix2pix  | `G`                           | -                             |
| cyclegan | `G_A`                         | `G_B`                         |
| munit    | encode `gen_a`, decode `gen_b` | encode `gen_b`, decode `gen_a` |

MUNIT is multimodal: each input gets `n_styles` outputs from random styles `s ~ N(0, I)` (one set of
styles per call, shared by all inputs, drawn from `seed`), or one output in the style of a reference
image encoded by the target domain's style encoder.

Test-time mode (`test_mode`) only matters for generators with BatchNorm or dropout (the pix2pix U-Net;
ResNet generators built with `use_dropout`):

- `"eval"` (default): every module in eval mode (BatchNorm's running statistics, no dropout).
  Deterministic, and batching never changes an image's output: what a single-image tool, the app and
  batch translation need.
- `"paper"`: what the pix2pix paper and its official test script (`test.py` without `--eval`, batch
  size 1) do: "we apply dropout at test time, and we apply batch normalization using the statistics of
  the test batch". Each image is its own test batch, run on `paper_mode_twin`s of the generators, so
  the checkpoint's statistics and calls in eval mode are never affected (even from other threads).
  With `seed` an image's dropout noise is a function of the seed and its pixels (reproducible,
  independent of the other images); `seed=None` draws fresh noise on every call, as the paper does. On
  the shipped pix2pix demo it lowers the held-out L1 (docs/evaluation.md), at the price of stochastic
  outputs, hence not the default.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ponogan.core.runtime import resolve_device
from ponogan.core.settings import DEFAULT_TEST_MODE, MAX_PROCESSED_PIXELS, TEST_MODES
from ponogan.data import pil_to_tensor, tensor_to_pil
from ponogan.data.image_io import to_mode
from ponogan.families import Route, family_names, get_family
from ponogan.inference.images import (
    ImageTooLargeError,
    as_pil_images,
    check_images,
    check_processed_size,
    moment_to_image,
    parse_size,
    resize_image,
    run_batched,
)
from ponogan.norm import Moments

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "no": torch.float32,  # accelerate's "no mixed precision" (--mixed-precision no)
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


_NOISE_MODULES = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def check_test_mode(test_mode: str) -> str:
    """`test_mode` if it is one of `TEST_MODES`, else `ValueError` naming the valid ones."""
    if test_mode not in TEST_MODES:
        raise ValueError(f"test_mode must be one of {', '.join(TEST_MODES)}, got {test_mode!r}")
    return test_mode


def has_test_time_noise(net: nn.Module) -> bool:
    """Whether `net` has a BatchNorm or an active dropout module, i.e. whether its test mode matters."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm)
        or (isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0)
        for m in net.modules()
    )


def paper_mode_twin(net: nn.Module) -> nn.Module:
    """A copy of `net` sharing its parameters and buffers, in eval mode except its BatchNorm and dropout
    modules, which are in train mode: BatchNorm then normalises with the batch's statistics and
    dropout is active (the pix2pix paper's test time).

    The twin's BatchNorm modules have their running-statistics buffers set to `None`, so a forward
    pass neither reads nor updates the statistics shared with `net`; `net`'s own modes are untouched.
    """
    shared = {id(t): t for t in (*net.parameters(), *net.buffers())}
    twin = copy.deepcopy(net, memo=shared).eval()
    for module in twin.modules():
        if isinstance(module, _NOISE_MODULES):
            module.train()
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean = module.running_var = module.num_batches_tracked = None
    return twin


def _image_seed(seed: int, img: Image.Image) -> int:
    """A 63-bit seed from `seed` and an image's mode, size and pixels (paper mode's dropout noise)."""
    digest = hashlib.blake2b(f"{int(seed)}|{img.mode}|{img.size}|".encode(), digest_size=8)
    digest.update(img.tobytes())
    return int.from_bytes(digest.digest(), "little") & (2**63 - 1)


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """The compute dtype: float32 (default), or bfloat16 / float16 run under autocast."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(_DTYPES)}")
        return _DTYPES[dtype.lower()]
    if dtype not in _DTYPES.values():
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
    return dtype


SEED_MAX = 2**64 - 1  # the largest seed torch's generators take


def check_seed(seed: int | None) -> int | None:
    """`seed` if it is `None` or an integer from 0 to `SEED_MAX`, else `ValueError` in one line (torch
    itself fails on larger seeds with "Overflow when unpacking long long")."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= SEED_MAX:
        raise ValueError(f"seed must be an integer from 0 to {SEED_MAX} (2**64 - 1), got {seed!r}")
    return int(seed)


def image_channels(net: nn.Module) -> int:
    """Channels a generator takes: its spec's `in_channels`, else the input width of its first conv."""
    kwargs = getattr(net, "spec", {}).get("kwargs", {})
    if "in_channels" in kwargs:
        return int(kwargs["in_channels"])
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"cannot tell the input channels of {type(net).__name__}: it has no Conv2d")
    return conv.in_channels


@contextmanager
def _too_small_is_clear(x: torch.Tensor, stride: int, what: str = "an image"):
    """Turn the norm layers' error for 1x1 features (an image too small for the network) into one line
    that names `what` was too small (the input, or MUNIT's style reference) with the size of `x`."""
    try:
        yield
    except ValueError as err:
        if "spatial element" not in str(err) and "more than 1 value per channel" not in str(err):
            raise
        h, w = x.shape[-2:]
        raise ValueError(
            f"{what} of {w}x{h} is too small for this network (its deepest features would be "
            f"1x1): resize it to at least {2 * stride} px on one side"
        ) from None


def describe_generator(net: nn.Module) -> str:
    """``ResnetGenerator(resnet_6blocks, shortcut=ms, layout=official)`` from a generator's spec."""
    spec = getattr(net, "spec", {}) or {}
    kwargs = spec.get("kwargs", {})
    parts = [spec.get("name", "?")] + [f"{k}={kwargs[k]}" for k in ("shortcut", "layout") if k in kwargs]
    return f"{type(net).__name__}({', '.join(map(str, parts))})"


class TranslationPipeline:
    """A trained translator: `pipe(images, direction="AtoB") -> list[PIL.Image]`.

    Build it with `from_pretrained`; `config` is the run's `config.json`, `family` its family name,
    `directions` the directions it supports, `device` and `dtype` where and how it computes.
    `test_mode` (`"eval"`, the default, or `"paper"`; see the module docstring) is how generators with
    BatchNorm or dropout run; a call may override it. `test_mode_matters` says whether the generators
    have such modules (for the others both modes give the same output).
    """

    def __init__(
        self,
        generators: dict[str, nn.Module],
        config: dict,
        *,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        test_mode: str = DEFAULT_TEST_MODE,
    ):
        family, known = config.get("family"), family_names()
        if family not in known:
            raise ValueError(
                f"checkpoint family {family!r} is not supported for inference; valid: {', '.join(known)}"
            )
        self.spec = get_family(family)
        views = self.spec.inference_views  # modules over the saved roles that the routes name
        roles = {role for route in self.spec.routes.values() for role in (route.source, route.target)}
        missing = sorted((set(self.spec.roles) if views else roles) - set(generators))
        if missing:
            raise ValueError(
                f"{family} checkpoint lacks generator(s) {', '.join(missing)}; it holds "
                f"{', '.join(sorted(generators)) or 'none'} (wrong or incomplete checkpoint?)"
            )
        if views is not None:
            generators = {**generators, **views(generators)}
        self.generators = {role: net.eval().to(device) for role, net in generators.items()}
        self.config = config
        self.family: str = family
        self.device = device
        self.dtype = dtype
        self.test_mode = check_test_mode(test_mode)
        self.test_mode_matters = any(has_test_time_noise(net) for net in self.generators.values())
        self._paper_generators: dict[str, nn.Module] | None = None
        self._paper_lock = threading.Lock()  # builds the twins once; serialises seeded paper calls

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        test_mode: str = DEFAULT_TEST_MODE,
        revision: str | None = None,
    ) -> TranslationPipeline:
        """Load a run folder (`config.json` + `model.safetensors`) or the `model.safetensors` file itself.

        `path` may also be a Hub repo id `user/name` (at `revision`), fetched into the Hugging Face cache
        by `ponogan.sharing.resolve_run`; a local folder of the same name wins.

        `device=None` picks CUDA, then MPS, else the CPU (`ponogan.core.runtime.resolve_device`);
        `dtype="bf16"` runs the generators under bf16 autocast; `test_mode` is `"eval"` (running
        statistics, no dropout) or `"paper"` (pix2pix's test time).
        """
        check_test_mode(test_mode)
        from ponogan.models.hub import load_pretrained
        from ponogan.sharing import resolve_run

        path = Path(resolve_run(path, revision))
        if path.is_file() and path.suffix != ".safetensors":
            raise ValueError(
                f"{path} is not a safetensors file; pass a run folder or its model.safetensors "
                "(pickled .pt/.pth checkpoints are never loaded)"
            )
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        device = torch.device(resolve_device(device))
        generators, config = load_pretrained(path, device=device)
        return cls(generators, config, device=device, dtype=resolve_dtype(dtype), test_mode=test_mode)

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(self.spec.routes)

    @property
    def multimodal(self) -> bool:
        return self.spec.multimodal

    def route(self, direction: str) -> Route:
        if direction not in self.spec.routes:
            raise ValueError(
                f"direction {direction!r} is not available for a {self.family} checkpoint; "
                f"valid: {', '.join(self.directions)}"
            )
        return self.spec.routes[direction]

    def input_mode(self, direction: str = "AtoB") -> str:
        """PIL mode the source network takes: `L` for one channel, `RGB` for three."""
        return "L" if image_channels(self.generators[self.route(direction).source]) == 1 else "RGB"

    def stride(self, direction: str = "AtoB") -> int:
        """The multiple the networks of `direction` pad H and W to (the largest of their strides)."""
        route = self.route(direction)
        nets = (self.generators[route.source], self.generators[route.target])
        return max(int(getattr(net, name, 1)) for net in nets for name in ("stride", "style_stride"))

    def _autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _networks(self, test_mode: str) -> dict[str, nn.Module]:
        """The generators to run for `test_mode`: the loaded ones, or their paper-mode twins (built once)."""
        if test_mode == "eval" or not self.test_mode_matters:
            return self.generators
        with self._paper_lock:
            if self._paper_generators is None:
                self._paper_generators = {role: paper_mode_twin(net) for role, net in self.generators.items()}
            return self._paper_generators

    @contextmanager
    def _paper_noise(self, seed: int | None, img: Image.Image):
        """Paper mode's dropout noise for one image: seeded from `seed` and the image when `seed` is set
        (global RNG saved and restored, one seeded call at a time), else the global RNG as it is."""
        if seed is None:
            yield
            return
        cuda = self.device.type == "cuda"
        with (
            self._paper_lock,
            torch.random.fork_rng(devices=[self.device] if cuda else [], device_type=self.device.type),
        ):
            image_seed = _image_seed(seed, img)
            torch.default_generator.manual_seed(image_seed)
            if cuda:
                with torch.cuda.device(self.device):
                    torch.cuda.manual_seed(image_seed)
            yield

    def _to_batch(self, images: Sequence[Image.Image], mode: str) -> torch.Tensor:
        return torch.stack([pil_to_tensor(img, mode) for img in images]).to(self.device)  # (N, C, H, W)

    def to(self, device: str | torch.device) -> TranslationPipeline:
        """Move the generators to `device` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``); returns self."""
        self.device = torch.device(resolve_device(device))
        self.generators = {role: net.to(self.device) for role, net in self.generators.items()}
        self._paper_generators = None  # rebuilt on the new device when needed
        return self

    def __repr__(self) -> str:
        nets = ", ".join(f"{role}: {describe_generator(net)}" for role, net in self.generators.items())
        return (
            f"TranslationPipeline(family={self.family}, directions={'/'.join(self.directions)}, "
            f"generators={{{nets}}}, device={self.device}, "
            f"dtype={str(self.dtype).replace('torch.', '')}, "
            f"test_mode={self.test_mode})"
        )

    def _styles(self, direction: str, style, n_styles: int, seed: int | None, style_dim: int) -> torch.Tensor:
        """Style codes `(S, style_dim, 1, 1)`: from a reference image / given codes, or `n_styles` draws."""
        if isinstance(style, Image.Image):
            target = self.generators[self.route(direction).target]
            ref = to_mode(style, "L" if image_channels(target) == 1 else "RGB")  # a target-domain image
            x = self._to_batch([ref], ref.mode)  # (1, C, H, W)
            with self._autocast(), _too_small_is_clear(x, self.stride(direction), "the style image"):
                return target.encode(x)[2].float()
        if isinstance(style, torch.Tensor):
            if style.numel() == 0 or style.numel() % style_dim:
                raise ValueError(
                    f"style codes need style_dim={style_dim} values each; got shape {tuple(style.shape)}"
                )
            return style.detach().float().reshape(-1, style_dim, 1, 1).to(self.device)
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        return torch.randn(n_styles, style_dim, 1, 1, generator=generator).to(self.device)

    @torch.inference_mode()
    def __call__(
        self,
        images,
        direction: str = "AtoB",
        style=None,
        seed: int | None = None,
        n_styles: int = 1,
        batch_size: int = 8,
        size: int | str | tuple[int, int] | None = None,
        test_mode: str | None = None,
        max_pixels: int | None = MAX_PROCESSED_PIXELS,
    ) -> Image.Image | list[Image.Image]:
        """Translate `images`: one image or a list / batch of them, of any size and mode (`as_pil_images`).

        One input (not in a list) gives one PIL image; a list or batch gives a list, one image per input,
        in order, of the input size (or `size` when resizing was asked: an int sets the shorter side,
        `(w, h)` the exact size). MUNIT returns `n_styles` images per input (input-major:
        `[x0_s0, x0_s1, ..., x1_s0, ...]`; a list for one input when `n_styles > 1`), or one per input and
        reference when `style` is a PIL image (a target-domain example) or a tensor of style codes
        `(S, style_dim[, 1, 1])`.
        `test_mode` overrides the pipeline's (`"eval"` / `"paper"`); in paper mode each image is run as
        its own batch and `seed` (when given) makes its dropout noise reproducible.

        `max_pixels` bounds memory as `ponogan translate --max-pixels` does: an image (or style
        reference) the networks would process at more pixels, after `size` and padding to the stride,
        raises `ImageTooLargeError` before anything is resized or computed, and a batch holds at most
        `max_pixels` processed pixels (`images.SizeBatcher`); `None` lifts the limit.
        Empty images raise `ValueError`; of a multi-frame image only the first frame is translated
        (with a `UserWarning`). `seed` is `None` or an integer from 0 to 2**64 - 1.
        """
        route = self.route(direction)
        nets = self._networks(check_test_mode(self.test_mode if test_mode is None else test_mode))
        paper = nets is not self.generators
        images, single = as_pil_images(images)
        check_images(images)
        check_seed(seed)
        if max_pixels is not None and max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1 (or None for no limit), got {max_pixels}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not self.multimodal and (style is not None or n_styles != 1):
            raise ValueError(f"style and n_styles apply to MUNIT checkpoints only; this one is {self.family}")
        if n_styles < 1:
            raise ValueError(f"n_styles must be >= 1, got {n_styles}")
        if style is not None and not isinstance(style, (Image.Image, torch.Tensor)):
            raise TypeError(
                f"style must be a PIL image or a tensor of style codes, got {type(style).__name__}"
            )
        mode = self.input_mode(direction)
        size = parse_size(size)
        stride = self.stride(direction)
        if isinstance(style, Image.Image):
            check_images([style], "style image")
        sizes = [(img.size, size) for img in images]
        sizes += [(style.size, None)] if isinstance(style, Image.Image) else []
        for image_size, resize in sizes:  # from the sizes alone: nothing resized or allocated yet
            try:
                check_processed_size(image_size, resize, stride, max_pixels, max_aspect=None)
            except ImageTooLargeError as err:
                raise ImageTooLargeError(
                    f"{err}; pass a smaller size= or a larger max_pixels= (None: no limit)", err.option
                ) from None
        prepared = [resize_image(to_mode(img, mode), size) for img in images]
        styles = None

        def translate(batch: list[Image.Image]) -> list[list[Image.Image]]:
            """The outputs of each image of one batch (one per style)."""
            nonlocal styles
            x = self._to_batch(batch, mode)  # (B, C, H, W)
            noise = self._paper_noise(seed, batch[0]) if paper else nullcontext()
            with self._autocast(), noise, _too_small_is_clear(x, stride):
                if not self.multimodal:
                    outputs = [nets[route.source](x)]
                else:
                    content, moments, own_style = nets[route.source].encode(x)
                    if styles is None:
                        styles = self._styles(direction, style, n_styles, seed, own_style.shape[1])
                    decoder = nets[route.target]
                    outputs = [
                        decoder.decode(
                            content,
                            moments,
                            s.expand(len(batch), -1, -1, -1).to(own_style),
                            size=x.shape[-2:],
                        )
                        for s in styles
                    ]
            per_style = [[tensor_to_pil(y) for y in out.float().cpu()] for out in outputs]  # (B, C_out, H, W)
            return [list(per_image) for per_image in zip(*per_style, strict=True)]

        # paper mode: each image is its own test batch
        results = run_batched(prepared, translate, 1 if paper else batch_size, max_pixels, stride)
        flat = [img for per_input in results for img in per_input]
        return flat[0] if single and len(flat) == 1 else flat

    @torch.inference_mode()
    def moments(self, image: Image.Image, direction: str = "AtoB", *, as_images: bool = False) -> list[tuple]:
        """PONO moments of `image` at each encoder level of the source network, shallow first.

        Returns `[(mean, std), ...]` as `(h, w)` float32 arrays (the padded input's grid), or with
        `as_images=True` as 8-bit grayscale PIL images min-max scaled for display. Empty for models
        trained without a moment shortcut.
        """
        if not isinstance(image, Image.Image):
            raise TypeError(f"moments takes one PIL image, got {type(image).__name__}")
        net = self.generators[self.route(direction).source]
        mode = self.input_mode(direction)
        x = self._to_batch([to_mode(image, mode)], mode)  # (1, C, H, W)
        with self._autocast():
            levels: Moments = net.encode(x)[1] if self.multimodal else net.extract_moments(x)
        arrays = [(mean[0, 0].float().cpu().numpy(), std[0, 0].float().cpu().numpy()) for mean, std in levels]
        if as_images:
            return [(moment_to_image(mean), moment_to_image(std)) for mean, std in arrays]
        return arrays
