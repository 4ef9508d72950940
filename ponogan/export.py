"""``ponogan export``: one direction of a run as ONNX or a ``torch.export`` program, for deployment.

The exported graph maps images ``x (N, C, H, W)`` in ``[-1, 1]`` to ``y (N, C_out, H, W)`` in
``[-1, 1]``; batch, height and width are dynamic, with H and W multiples of the generator's stride
(4 for ResNet and MUNIT, ``2**num_downs`` for the U-Net): pad before and crop after, as
``TranslationPipeline`` does (docs/app.md has a 10-line onnxruntime example). MUNIT exports with the
target domain's style either baked in (``style="fixed"``, drawn from ``seed``) or as a second input
``style (N, style_dim, 1, 1)`` (``style="input"``).

The legacy TorchScript ONNX exporter and ``torch.jit.script`` cannot trace the fused PONO autograd
function; ``torch.export`` (and the dynamo ONNX exporter built on it, which needs ``onnxscript``) can.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ponogan.atomic import atomic_write
from ponogan.settings import EXPORT_FORMATS as FORMATS
from ponogan.settings import EXPORT_STYLES as STYLES

MAX_SIDE = 16384  # upper bound of the dynamic height/width


class ExportError(ValueError):
    """The run cannot be exported as asked (missing exporter package, bad option, existing file)."""


class MunitTranslator(nn.Module):
    """MUNIT one way: content and moments of ``x`` from ``source``, decoded by ``target`` with a style.

    ``style="fixed"``: ``forward(x)`` with the style code stored as a buffer; ``style="input"``:
    ``forward(x, style (N, style_dim, 1, 1))``.
    """

    def __init__(self, source: nn.Module, target: nn.Module, *, style: str = "fixed", seed: int = 0):
        super().__init__()
        self.source, self.target = source, target
        self.stride = source.stride
        self.style_input = style == "input"
        code = torch.randn(1, target.style_dim, 1, 1, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("style", code.to(next(target.parameters()).dtype))

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        content, moments, _ = self.source.encode(x)
        code = style if self.style_input else self.style.expand(x.shape[0], -1, -1, -1)
        return self.target.decode(content, moments, code)


def build_translator(pipe, direction: str = "AtoB", *, style: str = "fixed", seed: int = 0) -> nn.Module:
    """The module to export for one direction of a ``TranslationPipeline`` (in eval mode, on CPU): the
    generator itself for pix2pix and CycleGAN, a ``MunitTranslator`` for MUNIT."""
    if style not in STYLES:
        raise ExportError(f"unknown --style {style!r}; valid: {', '.join(STYLES)}")
    route = pipe.route(direction)
    source, target = pipe.generators[route.source], pipe.generators[route.target]
    if pipe.multimodal:
        return MunitTranslator(source, target, style=style, seed=seed).eval()
    if style == "input":
        raise ExportError(f"--style input applies to MUNIT runs; this one is {pipe.family}")
    return source.eval()


def _example_and_shapes(module: nn.Module, channels: int):
    """Example inputs (batch 2, so the batch dim is not specialised to 1) and their dynamic shapes."""
    stride = module.stride
    batch = torch.export.Dim("batch", min=1, max=4096)
    h = torch.export.Dim("h_blocks", min=1, max=MAX_SIDE // stride)
    w = torch.export.Dim("w_blocks", min=1, max=MAX_SIDE // stride)
    x = torch.rand(2, channels, 2 * stride, 3 * stride) * 2 - 1
    shapes = {"x": {0: batch, 2: stride * h, 3: stride * w}}
    if isinstance(module, MunitTranslator) and module.style_input:
        return (x, torch.randn(2, module.target.style_dim, 1, 1)), {**shapes, "style": {0: batch}}
    return (x,), shapes


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
    from ponogan.pipeline import TranslationPipeline, image_channels

    if format not in FORMATS:
        raise ExportError(f"unknown --format {format!r}; valid: {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; choose another --out or pass --overwrite")
    if not out.parent.is_dir():
        raise ExportError(f"folder {out.parent} does not exist")
    pipe = TranslationPipeline.from_pretrained(run, device="cpu")
    module = build_translator(pipe, direction, style=style, seed=seed)
    source = pipe.generators[pipe.route(direction).source]
    args, shapes = _example_and_shapes(module, image_channels(source))
    if format == "exported-program":
        program = torch.export.export(module, args, dynamic_shapes=shapes)
        atomic_write(out, lambda tmp: torch.export.save(program, tmp))
    else:
        atomic_write(
            out, lambda tmp: _export_onnx(module, args, shapes, tmp, direction=direction, family=pipe.family)
        )
    return out


def _export_onnx(module, args, shapes, path: Path, *, direction: str, family: str) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter's back end)
    except ImportError:
        raise ExportError('ONNX export needs onnxscript: pip install -e ".[export]"') from None
    names = ["x", "style"][: len(args)]
    program = torch.onnx.export(
        module, args, dynamo=True, dynamic_shapes=shapes, input_names=names, output_names=["y"], verbose=False
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
