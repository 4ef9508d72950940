"""The run-folder contract (``ponogan.core.run_folder``): names, the card's round trip, the migration of
older cards, and one-line errors for every config.json that is not a card."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ponogan.core.messages import UsageError
from ponogan.core.run_folder import (
    FORMAT_VERSION,
    MAX_CARD_BYTES,
    DataGeometry,
    RunCard,
    RunFolder,
    RunFolderError,
    RunFolderMissing,
)

REPO = Path(__file__).resolve().parents[1]
DEMOS = sorted((REPO / "tests" / "data" / "run_v1").glob("demo_*"))  # format 1 run folders
SPEC = {"name": "resnet_6blocks", "kwargs": {"ngf": 4, "n_blocks": 1}}


def v1_folder_card() -> dict:
    """A card as ponogan wrote it before format 2, of a run trained on a folder dataset: no
    ``format_version``, the root as ``dataroot``, and ``data.image_size`` holding the 256 px crop."""
    options = {"load_size": 286, "crop_size": 256, "image_size": 64, "preprocess": "resize_and_crop"}
    return {
        "family": "cyclegan",
        "data": {"mode": "unaligned", "dataroot": "datasets/horse2zebra", **options, "image_size": 256},
        "train": {"family": "cyclegan", "data": {"mode": "unaligned", "options": options}},
        "step": 40,
        "runtime": {"device": "cpu"},
        "generators": {"G_A": SPEC, "G_B": SPEC},
    }


def test_names_round_trip_and_forward_compatible_keys(tmp_path):
    folder = RunFolder.of(tmp_path / "run" / "model.safetensors")
    assert folder == RunFolder(tmp_path / "run") and folder.config.name == "config.json"
    assert folder.state_dir.name == "state" and folder.lock.name == "train.lock"
    assert folder.sample(500) == tmp_path / "run" / "samples" / "step_000500.png"

    card = RunCard(
        family="pix2pix",
        generators={"G": SPEC},
        data=DataGeometry(mode="aligned", root="d", load_size=64, crop_size=48, options={"font": "x"}),
        train={"seed": 3},
        step=7,
        extra={"from_the_future": {"a": [1, 2]}},
    )
    path = card.save(tmp_path / "config.json")
    loaded = RunCard.load(path)
    assert loaded == card and loaded.to_dict() == json.loads(path.read_text())
    assert loaded.format_version == FORMAT_VERSION and loaded.data.side == 48
    assert loaded.data.image_size is None and loaded.direction == "AtoB"
    # a newer ponogan's keys survive a load and save by this one, at the top and inside data
    values = {**card.to_dict(), "later": 1}
    values["data"]["later_option"] = [1]
    path.write_text(json.dumps(values))
    again = RunCard.load(path)
    again.save(path)
    assert json.loads(path.read_text()) == values

    # no torch import: the CLI and the app read cards before torch loads
    code = f"import sys; from ponogan.core.run_folder import RunCard; RunCard.load({str(path)!r}); "
    code += "assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_v1_card_is_migrated_and_the_demos_load(tmp_path):
    card = RunCard.from_dict(v1_folder_card(), "old")
    assert card.format_version == 2 and card.data.root == "datasets/horse2zebra"
    assert (card.data.crop_size, card.data.load_size, card.data.image_size, card.data.side) == (
        256,
        286,
        64,
        256,
    )
    assert "dataroot" not in card.to_dict()["data"] and card.extra == {"runtime": {"device": "cpu"}}
    assert card.domains == ("datasets/horse2zebra A", "datasets/horse2zebra B")
    # a v1 card without its training config: the crop stays the crop, image_size is dropped
    bare = v1_folder_card()
    del bare["train"], bare["data"]["crop_size"]
    assert RunCard.from_dict(bare).data.crop_size == 256 and RunCard.from_dict(bare).data.image_size is None

    assert len(DEMOS) == 2
    for demo in DEMOS:  # format 1 glyph runs: their geometry is unchanged
        raw = json.loads((demo / "config.json").read_text())
        assert "format_version" not in raw
        card = RunCard.load(demo / "config.json")
        assert card.data.side == raw["data"]["image_size"] == 64 and card.family == raw["family"]
        assert card.to_dict()["data"] == {k: v for k, v in raw["data"].items() if k != "root"}  # null root
        assert card.data.root is None and card.train == raw["train"]
        assert set(card.generators) == set(raw["generators"])
        assert card.domains == (raw["data"]["font_a"], raw["data"]["font_b"]) and card.direction == "AtoB"

    newer = {**v1_folder_card(), "format_version": FORMAT_VERSION + 1}
    with pytest.raises(RunFolderError, match="newer than this ponogan.*upgrade"):
        RunCard.from_dict(newer, "x")
    with pytest.raises(RunFolderError, match="format_version"):
        RunCard.from_dict({**newer, "format_version": "2"}, "x")


def test_the_exported_card_keeps_crop_load_and_glyph_sizes_apart(tmp_path):
    """save_pretrained -> load_pretrained -> eval's dataset, on a migrated v1 folder run and its v2 save."""
    from ponogan.metrics.run_eval import dataset_for_run, record_metrics_in_run
    from ponogan.models import create_generator, load_pretrained, save_pretrained

    gens = {role: create_generator(SPEC["name"], **SPEC["kwargs"]) for role in ("G_A", "G_B")}
    run = save_pretrained(tmp_path / "run", gens, {"family": "cyclegan"})
    values = {**v1_folder_card(), "generators": json.loads((run / "config.json").read_text())["generators"]}
    (run / "config.json").write_text(json.dumps(values))
    _, config = load_pretrained(run)
    assert config["format_version"] == 2 and config["data"]["crop_size"] == 256
    assert config["data"]["image_size"] == 64 and config["runtime"] == {"device": "cpu"}
    # glyphs for a run trained on 256 px crops are drawn at 256 px, as before the split
    dataset, mode = dataset_for_run(values, "glyphs", "test")
    assert mode == "glyphs" and dataset[0]["A"].shape[-1] == 256
    record_metrics_in_run(run / "model.safetensors", {"fid": 1.5})
    saved = json.loads((run / "config.json").read_text())
    assert saved["metrics"] == {"fid": 1.5} and saved["format_version"] == 2
    assert saved["runtime"] == {"device": "cpu"} and saved["data"]["root"] == "datasets/horse2zebra"


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", ["not valid JSON"]),
        ('{"a": ' * 100_000 + "1" + "}" * 100_000, ["nested too deeply"]),
        ('{"a": ' * 40 + "1" + "}" * 40, ["nested too deeply"]),
        ("[1, 2]", ["does not hold a JSON object"]),
        ('"a card"', ["does not hold a JSON object"]),
        (json.dumps({"architectures": ["Bert"], "model_type": "bert"}), ["no 'generators'", "not a ponogan"]),
        (json.dumps({"family": 3, "generators": {"G": SPEC}}), ["'family' must be a string"]),
        (json.dumps({"data": [1], "generators": {"G": SPEC}}), ["'data' must be a mapping"]),
        (json.dumps({"data": {"crop_size": "256"}, "generators": {"G": SPEC}}), ["data.crop_size", "whole"]),
        (json.dumps({"generators": {"G": "unet_256"}}), ["generator 'G'", "'name'", "'kwargs'"]),
        (json.dumps({"generators": {"G": {"name": "x", "kwargs": [1]}}}), ["kwargs", "mapping"]),
        (" " * (MAX_CARD_BYTES + 1), ["over 1,000,000 bytes"]),
        (b"\xff\xfe{}", ["cannot read"]),
    ],
    ids=[
        "broken", "deep", "nested", "list", "string", "foreign", "family", "data", "size", "spec", "kwargs",
        "huge", "binary",
    ],
)  # fmt: skip
def test_a_config_json_that_is_no_card_is_one_line(tmp_path, text, words):
    path = tmp_path / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RunFolderError) as info:
        RunCard.load(path)
    message = str(info.value)
    assert isinstance(info.value, UsageError) and "\n" not in message and len(message) < 400, message
    assert str(path) in message and all(word in message for word in words), message


def test_missing_files_and_what_each_reader_requires(tmp_path):
    with pytest.raises(RunFolderMissing, match="does not exist") as info:
        RunCard.load(tmp_path / "config.json")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    with pytest.raises(RunFolderMissing, match="folder not found"):
        RunFolder(tmp_path / "nowhere").require_model()
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RunFolderMissing, match="file missing.*model.safetensors"):
        RunFolder(tmp_path).require_model()
    (tmp_path / "config.json").write_text(json.dumps({"train": {"seed": 1}}))
    assert RunCard.load(tmp_path / "config.json", generators=False).train == {"seed": 1}  # --resume's read
    (tmp_path / "config.json").write_text(json.dumps({"generators": {"G": SPEC}}))
    assert RunCard.load(tmp_path / "config.json").family is None  # weights-only cards load (hub)
    with pytest.raises(RunFolderError, match="'family' must be a string"):
        RunCard.load(tmp_path / "config.json", family=True)  # the app needs to know what it serves
