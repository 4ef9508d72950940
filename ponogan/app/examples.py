"""The app's clickable examples: each run's example inputs rendered once into a folder of the app's own."""

from __future__ import annotations

import json
from pathlib import Path

from ponogan.app.support import CheckpointInfo, direction_labels, example_inputs, start_tab
from ponogan.families import get_family

# {key: (label, direction, [path, ...])}: one set per distinct (training data, direction)
ExampleSets = dict[tuple, tuple[str, str, list[str]]]


def write_examples(
    runs: dict[str, CheckpointInfo], folder: Path
) -> tuple[ExampleSets, dict[str, list[tuple]]]:
    """Render every run's example inputs into `folder` as PNGs, once per distinct (data, direction).

    Returns `(sets, {run name: [its keys]})`. Why files in a folder of the app's own (served as gradio
    static files): gradio would otherwise copy examples into its upload cache, which `--upload-max-age`
    empties.
    """
    sets: ExampleSets = {}
    per_run: dict[str, list[tuple]] = {}
    for name, info in runs.items():
        labels = direction_labels(info.config, get_family(info.config["family"]).directions)
        glyphs = start_tab(info.config) == "text"
        what = "held-out characters, never seen in training" if glyphs else "test images"
        for direction, label in labels.items():
            key = (json.dumps(info.config.get("data"), sort_keys=True, default=str), direction)
            if key not in sets:
                try:
                    images = example_inputs(info.config, direction)
                except Exception:  # noqa: BLE001 - examples are extras: a run whose test split fails has none
                    images = []
                if not images:
                    continue
                paths = [Path(folder) / f"set{len(sets)}" / f"{i:02d}.png" for i in range(len(images))]
                paths[0].parent.mkdir(parents=True, exist_ok=True)
                for image, path in zip(images, paths, strict=True):
                    image.save(path)
                sets[key] = (f"Examples: {label} ({what})", direction, [str(path) for path in paths])
            per_run.setdefault(name, []).append(key)
    return sets, per_run
