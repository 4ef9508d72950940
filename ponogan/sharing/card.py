"""The model card (``README.md``) of a run pushed to the Hub, built from its files only.

YAML front matter through ``huggingface_hub.ModelCardData`` (``library_name: ponogan``,
``pipeline_tag: image-to-image``, tags for the family and the shortcut, the license, the dataset, the
metrics of ``metrics.json`` as a ``model-index``), then: what the model does (domains, direction, image
size, parameters), how it was trained (run name, steps, batch size, precision, hardware from
``config.json``'s ``runtime``), the sample grid and loss plot the upload carries, a five-line usage
snippet, and the citations of PONO and of the family's paper (``get_family(name).paper``).
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

PONO_BIBTEX = """@inproceedings{li2019positional,
  title     = {Positional Normalization},
  author    = {Li, Boyi and Wu, Felix and Weinberger, Kilian Q. and Belongie, Serge},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2019}
}"""

SHORTCUTS = {  # config value -> (tag, words)
    "ms": ("pono-ms", "PONO with the Moment Shortcut (MS)"),
    "dms": ("pono-dms", "PONO with the Dynamic Moment Shortcut (DMS)"),
}
_HEADER_LIMIT = 100 * 2**20  # a safetensors header larger than this is not read for the parameter count


def parameter_count(weights: Path) -> int | None:
    """Number of values in a safetensors file, from its JSON header (no tensor is read); None when the
    header cannot be read."""
    try:
        with open(weights, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size <= _HEADER_LIMIT:
                return None
            header = json.loads(f.read(size))
        return sum(math.prod(entry["shape"]) for key, entry in header.items() if key != "__metadata__")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _shortcut(config: dict) -> str | None:
    for spec in (config.get("generators") or {}).values():
        value = (spec.get("kwargs") or {}).get("shortcut") if isinstance(spec, dict) else None
        if value:
            return str(value)
    return None


def _dataset(data: dict) -> tuple[str, str]:
    """``(dataset id for the front matter, the domains in words)``."""
    if data.get("mode") == "glyphs":
        fonts = f"{data.get('font_a', '?')} (A) -> {data.get('font_b', '?')} (B)"
        return "ponogan-glyphs", f"the built-in glyph data: characters in {fonts}"
    root = Path(str(data.get("root") or "dataset")).name
    return root, f"the {data.get('mode', 'folder')} dataset `{root}` (domains A and B)"


def _metrics(run_dir: Path, config: dict) -> dict[str, float]:
    """Test metrics: ``metrics.json`` when present, else the ``metrics`` ``config.json`` records."""
    found = config.get("metrics")
    path = run_dir / "metrics.json"
    if path.is_file():
        with contextlib.suppress(ValueError, OSError):
            found = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(found, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in found.items()
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def _get(mapping: object, *keys: str) -> object:
    for key in keys:
        mapping = mapping.get(key) if isinstance(mapping, dict) else None
    return mapping


def build_card(
    run_dir: Path,
    config: dict,
    repo_id: str,
    pictures: dict[str, str],
    license: str = "mit",
    revision: str | None = None,
) -> str:
    """The card's text. ``pictures`` maps ``"samples"`` / ``"losses"`` to their paths in the repo (only
    the pictures the upload carries); ``revision`` is the branch the snippet loads."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from ponogan.families import get_family

    family = get_family(config["family"])
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    dataset_id, domains = _dataset(data)
    shortcut = _shortcut(config)
    tag, shortcut_words = SHORTCUTS.get(shortcut, (f"shortcut-{shortcut}", f"shortcut `{shortcut}`"))
    tags = ["ponogan", "image-to-image", "gan", family.name, "positional-normalization", "pono"]
    tags += [tag] if shortcut else []
    metrics = _metrics(run_dir, config)
    name = repo_id.split("/")[-1]
    results = [
        EvalResult(
            task_type="image-to-image",
            dataset_type=dataset_id,
            dataset_name=dataset_id,
            dataset_split="test",
            metric_type=key,
            metric_value=value,
        )
        for key, value in metrics.items()
    ]
    card_data = ModelCardData(
        library_name="ponogan",
        pipeline_tag="image-to-image",
        license=license,
        tags=tags,
        datasets=[dataset_id],
        metrics=list(metrics) or None,
        model_name=name if results else None,
        eval_results=results or None,
    )

    directions = " and ".join(family.directions)
    size = data.get("image_size") or data.get("crop_size")
    params = parameter_count(run_dir / "model.safetensors")
    runtime = config.get("runtime") if isinstance(config.get("runtime"), dict) else {}
    train = _get(config, "train", "train") or {}
    steps = config.get("step", _get(train, "max_steps"))
    device = runtime.get("device") or _get(train, "device") or "unknown"
    processes = runtime.get("num_processes") or 1
    precision = runtime.get("mixed_precision") or _get(train, "mixed_precision") or "no"
    run_name = config.get("run_name") or _get(config, "train", "run_name") or name
    generators = ", ".join(
        f"`{role}`: `{spec.get('name')}`" for role, spec in (config.get("generators") or {}).items()
    )
    style = (
        "It is multimodal: each input gets several outputs from random style codes (`n_styles`, `seed`) "
        "or one in the style of a reference image."
        if family.multimodal
        else "One output per input."
    )
    revision_arg = f', revision="{revision}"' if revision else ""
    lines = [
        f"# {name}",
        "",
        f"A **{family.name}** image-to-image translator built with ponogan and "
        f"{shortcut_words if shortcut else 'no moment shortcut'}, trained on {domains}.",
        "",
        "| | |",
        "|---|---|",
        f"| family | {family.name} ({family.paper}) |",
        f"| directions | {directions} |",
        f"| generators | {generators} |",
        f"| image size | {size} x {size} |" if size else "| image size | any |",
        f"| parameters | {params:,} |" if params is not None else "| parameters | unknown |",
        "",
        style,
        "",
        "## Training",
        "",
        f"Run `{run_name}`: {steps} steps on {device}"
        + (f" ({processes} processes)" if processes > 1 else "")
        + f", mixed precision `{precision}`"
        + (f", batch size {batch}." if (batch := _get(config, "train", "data", "batch_size")) else "."),
        "",
    ]
    if metrics:
        lines += ["Metrics on the test split:", "", "| " + " | ".join(metrics) + " |"]
        lines += [
            "|" + "---|" * len(metrics),
            "| " + " | ".join(f"{v:.4g}" for v in metrics.values()) + " |",
            "",
        ]
    if "samples" in pictures:
        lines += ["## Samples", "", f"![sample grid]({pictures['samples']})", ""]
    if "losses" in pictures:
        lines += ["## Losses", "", f"![loss curves]({pictures['losses']})", ""]
    lines += [
        "## Use",
        "",
        "```python",
        "from PIL import Image",
        "from ponogan.inference.pipeline import TranslationPipeline",
        "",
        f'pipe = TranslationPipeline.from_pretrained("{repo_id}"{revision_arg})',
        f'pipe(Image.open("input.png"), direction="{family.directions[0]}").save("output.png")',
        "```",
        "",
        f"or `ponogan translate --checkpoint {repo_id} --input photos/ --output out/`.",
        "",
        "## Citation",
        "",
        "```bibtex",
        PONO_BIBTEX,
        "```",
        "",
        f"Family: {family.paper}.",
        "",
    ]
    text = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines)
    return ModelCard(text).content  # parses its own front matter: a card the Hub reads
