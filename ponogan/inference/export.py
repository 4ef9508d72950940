"""``ponogan export``: one direction of a run as ONNX or a ``torch.export`` program, for deployment.

The exported graph maps images ``x (N, C, H, W)`` in ``[-1, 1]`` to ``y (N, C_out, H, W)`` in
``[-1, 1]``; batch, height and width are dynamic, with H and W multiples of the export's stride
(4 for ResNet, ``2**num_downs`` for the U-Net, for MUNIT the larger of ``2**n_downsample`` and the
style encoder's ``2**style_downsample``, for DRIT 16, its attribute encoders' four halvings): pad
before and crop after, as ``TranslationPipeline`` does (docs/export.md has a 10-line onnxruntime
example). The multimodal families (MUNIT, DRIT through its per-domain views ``drit_a`` / ``drit_b``)
export with the target domain's style (DRIT: attribute code) either baked in (``style="fixed"``, drawn
from ``seed``) or as a second input ``style (N, style_dim, 1, 1)`` (``style="input"``).

The legacy TorchScript ONNX exporter and ``torch.jit.script`` cannot trace the fused PONO autograd
function; ``torch.export`` (and the dynamo ONNX exporter built on it, which needs ``onnxscript``) can.

Two things keep the graph general: the example input is at least 2 x 3 strides (a dim of 1 in the
example would be specialised), and the export runs with PyTorch's size-oblivious reasoning, so a
feature map that is 1 pixel wide at the smallest size (the U-Net's innermost level at one stride) adds
no ``!= 1`` guard. The smallest accepted side is the smallest multiple of the stride the network runs
at (reflect pads need features larger than the pad: 16 px for the official PONO-MUNIT decoder).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from torch import nn

from ponogan.core.atomic import atomic_write
from ponogan.core.messages import CommandError, UsageError, first_line
from ponogan.core.settings import EXPORT_FORMATS as FORMATS
from ponogan.core.settings import EXPORT_STYLES as STYLES

MAX_SIDE = 16384  # upper bound of the dynamic height/width


SUFFIXES = {"onnx": ".onnx", "exported-program": ".pt2"}  # the file name ending of each format
MAX_MIN_BLOCKS = 8  # the smallest size probed for a network is at most this many strides


class ExportError(UsageError):
    """The run cannot be exported as asked (missing exporter package, bad option or --out); exit 2."""


class MunitTranslator(nn.Module):
    """A multimodal family one way (MUNIT's auto-encoders, DRIT's per-domain views): content and
    moments of ``x`` from ``source``, decoded by ``target`` with a style.

    ``style="fixed"``: ``forward(x)`` with the style code stored as a buffer; ``style="input"``:
    ``forward(x, style (N, style_dim, 1, 1))``.
    """

    def __init__(self, source: nn.Module, target: nn.Module, *, style: str = "fixed", seed: int = 0):
        super().__init__()
        self.source, self.target = source, target
        # encode pads the content path to ``stride`` and the style path to ``style_stride``: a multiple
        # of the larger needs no padding in either, as the pipeline's ``stride()`` does
        self.stride = max(source.stride, source.style_stride)
        self.style_input = style == "input"
        code = torch.randn(1, target.style_dim, 1, 1, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("style", code.to(next(target.parameters()).dtype))

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        content, moments, _ = self.source.encode(x)
        code = style if self.style_input else self.style.repeat(x.shape[0], 1, 1, 1)
        return self.target.decode(content, moments, code)


def build_translator(pipe, direction: str = "AtoB", *, style: str = "fixed", seed: int = 0) -> nn.Module:
    """The module to export for one direction of a ``TranslationPipeline`` (in eval mode, on CPU): the
    generator itself for pix2pix and CycleGAN, a ``MunitTranslator`` for a multimodal family (MUNIT, DRIT)."""
    if style not in STYLES:
        raise ExportError(f"unknown --style {style!r}; valid: {', '.join(STYLES)}")
    route = pipe.route(direction)
    source, target = pipe.generators[route.source], pipe.generators[route.target]
    if pipe.multimodal:
        return MunitTranslator(source, target, style=style, seed=seed).eval()
    if style == "input":
        raise ExportError(f"--style input applies to MUNIT and DRIT runs; this one is {pipe.family}")
    return source.eval()


def _inputs(module: nn.Module, channels: int, n: int, h: int, w: int) -> tuple[torch.Tensor, ...]:
    """Inputs of the exported graph: ``x (n, channels, h, w)`` in [-1, 1] (+ the MUNIT style), from
    a generator of their own, so exporting leaves the global random state as it was."""
    rng = torch.Generator().manual_seed(0)
    x = torch.rand(n, channels, h, w, generator=rng) * 2 - 1
    if isinstance(module, MunitTranslator) and module.style_input:
        return x, torch.randn(n, module.target.style_dim, 1, 1, generator=rng)
    return (x,)


def min_blocks(module: nn.Module, channels: int) -> int:
    """The smallest ``k`` such that ``module`` runs on a ``k * stride`` square (eager, batch 1).

    A generator whose reflect pads outgrow its features at one stride (the official PONO-MUNIT
    decoder's conv5 at H/4 = 2) needs a larger minimum, which the dynamic shapes must state.
    """
    stride = module.stride
    for k in range(1, MAX_MIN_BLOCKS + 1):
        try:
            with torch.no_grad():
                module(*_inputs(module, channels, 1, k * stride, k * stride))
        except (RuntimeError, ValueError):  # pads larger than a feature, 1x1 instance norms
            continue
        return k
    raise CommandError(
        f"the network does not run on images up to {MAX_MIN_BLOCKS * stride} px; cannot export it"
    )


def _example_and_shapes(module: nn.Module, channels: int):
    """Example inputs and their dynamic shapes: batch, and H, W as multiples of the stride from the
    smallest size the network runs at. The example has batch 2 and 2 x 3 strides at least, so no
    dim is specialised to 1."""
    stride, low = module.stride, min_blocks(module, channels)
    batch = torch.export.Dim("batch", min=1, max=4096)
    h = torch.export.Dim("h_blocks", min=low, max=MAX_SIDE // stride)
    w = torch.export.Dim("w_blocks", min=low, max=MAX_SIDE // stride)
    k = max(low, 2)
    args = _inputs(module, channels, 2, k * stride, (k + 1) * stride)
    shapes = {"x": {0: batch, 2: stride * h, 3: stride * w}}
    if len(args) == 2:
        shapes["style"] = {0: batch}
    return args, shapes


def _size_oblivious():
    """PyTorch's size-oblivious shape reasoning during export (a size-1 feature map then adds no
    guard); a no-op on versions without the switch."""
    config = torch.fx.experimental._config
    if hasattr(config, "backed_size_oblivious"):
        return config.patch(backed_size_oblivious=True)
    return contextlib.nullcontext()


def check_out(out: Path, format: str, *, overwrite: bool) -> None:
    """Refuse an ``--out`` that cannot be written as asked, before anything is loaded or written."""
    if out.is_dir():
        raise ExportError(
            f"--out {out} is a folder; pass a file path such as {out / ('model' + SUFFIXES[format])}"
        )
    for other, suffix in SUFFIXES.items():
        if other != format and out.suffix.lower() == suffix:
            raise ExportError(
                f"--out {out} ends in {suffix} but --format is {format}; "
                f"use --format {other}, or an --out ending in {SUFFIXES[format]}"
            )
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; choose another --out or pass --overwrite")
    if not out.parent.is_dir():
        raise ExportError(f"folder {out.parent} does not exist")


def export(
    run: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str = "onnx",
    direction: str = "AtoB",
    style: str = "fixed",
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Export one direction of the run folder ``run`` to ``out``; returns ``out``.

    ``format="onnx"`` writes an ONNX model (dynamo exporter; needs ``onnxscript``) with the stride,
    direction and value range in its metadata; ``"exported-program"`` writes ``torch.export.save``'s
    ``.pt2`` archive (load it with ``torch.export.load(path).module()``). ``out`` is never replaced
    unless ``overwrite``.
    """
    from ponogan.inference.pipeline import TranslationPipeline, image_channels

    if format not in FORMATS:
        raise ExportError(f"unknown --format {format!r}; valid: {', '.join(FORMATS)}")
    out = Path(out)
    check_out(out, format, overwrite=overwrite)
    try:
        pipe = TranslationPipeline.from_pretrained(run, device="cpu")
    except (FileNotFoundError, ValueError) as err:
        raise ExportError(first_line(err)) from err
    module = build_translator(pipe, direction, style=style, seed=seed)
    source = pipe.generators[pipe.route(direction).source]
    args, shapes = _example_and_shapes(module, image_channels(source))
    if format == "exported-program":
        with _size_oblivious():
            program = torch.export.export(module, args, dynamic_shapes=shapes)
        write = lambda tmp: torch.export.save(program, tmp)  # noqa: E731
    else:
        write = lambda tmp: _export_onnx(module, args, shapes, tmp, direction=direction, family=pipe.family)  # noqa: E731
    try:
        atomic_write(out, write, exclusive=not overwrite)
    except FileExistsError:
        raise ExportError(
            f"{out} appeared while exporting; choose another --out or pass --overwrite"
        ) from None
    except OSError as err:
        raise CommandError(f"could not write {out}: {first_line(err)}") from err
    return out


def _export_onnx(module, args, shapes, path: Path, *, direction: str, family: str) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter's back end)
    except ImportError:
        raise ExportError('ONNX export needs onnxscript: pip install -e ".[export]"') from None
    names = ["x", "style"][: len(args)]
    with _size_oblivious():
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=names,
            output_names=["y"],
            verbose=False,
        )
    program.save(str(path))
    model = onnx.load(str(path))
    meta = {
        "ponogan.family": family,
        "ponogan.direction": direction,
        "ponogan.stride": str(module.stride),
        "ponogan.range": "[-1, 1]",
    }
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
