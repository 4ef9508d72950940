"""Pushing runs to the Hub and loading them back by repo id, against the stand-in Hub of
``tests/hub_standin.py`` on 127.0.0.1 (no network): the round trip, the model card, what travels (and
what never does), offline mode, and one error line for each way a name can fail."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard, constants
from PIL import Image

from ponogan.cli import main
from ponogan.core.messages import CommandError, UsageError
from ponogan.families import get_family
from ponogan.inference.pipeline import TranslationPipeline
from ponogan.models import create_generator, save_pretrained
from ponogan.sharing import files, resolve_run

sys.path.insert(0, str(Path(__file__).parent))
from hub_standin import StandInHub  # noqa: E402


@pytest.fixture(scope="module")
def server():
    hub = StandInHub().start()
    yield hub
    hub.stop()


@pytest.fixture
def hub(server, tmp_path, monkeypatch):
    """The hub library pointed at the stand-in (as HF_ENDPOINT / HF_HOME would), cwd an empty folder."""
    server.repos.clear()
    server.requests.clear()
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_standin")
    monkeypatch.chdir(tmp_path)
    return server


def tiny_run(run_dir: Path, **extra) -> Path:
    torch.manual_seed(0)
    gens = {"G": create_generator("unet_128", ngf=4, num_downs=4, shortcut="ms")}
    data = {"mode": "glyphs", "image_size": 32, "font_a": "DejaVuSans", "font_b": "DejaVuSerif-Bold"}
    runtime = {"device": "cpu", "mixed_precision": "no", "num_processes": 1}
    return save_pretrained(
        run_dir, gens, {"family": "pix2pix", "data": data, "step": 3, "runtime": runtime}, **extra
    )


def repo_files(hub: StandInHub, repo_id: str, branch: str = "main") -> dict[str, bytes]:
    repo = hub.repos[repo_id]
    return repo["commits"][repo["refs"][branch]]


@pytest.mark.slow  # about 5 s alone: three loads of a 32 px U-Net, a translate run, app.py's imports
def test_push_then_load_by_repo_id(hub, tmp_path, capsys, monkeypatch):
    run = tiny_run(tmp_path / "runs" / "tiny")
    (run / "metrics.json").write_text(json.dumps({"step": 3, "l1": 0.25, "psnr": 12.5}))
    Image.new("RGB", (8, 8), "red").save(run / "losses.png")
    (run / "samples").mkdir()
    for step in (1, 3):
        Image.new("RGB", (8, 8), "blue").save(run / "samples" / f"step_{step:06d}.png")
    (run / "state" / "step_000003").mkdir(parents=True)
    for name in ("nets.safetensors", "optimizers.pt", "schedulers.pt", "rank_0.pt", "trainer_state.json"):
        (run / "state" / "step_000003" / name).write_bytes(b"x")
    (run / "state" / "latest").write_text("step_000003\n")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))

    assert main(["push", str(run), "--repo", "alice/tiny"]) == 0
    out = capsys.readouterr()
    assert "alice/tiny/commit/" in out.out and "generated model card" in out.err
    pushed = repo_files(hub, "alice/tiny")
    assert set(pushed) == {
        ".gitattributes",
        "config.json",
        "model.safetensors",
        "README.md",
        "metrics.json",
        "losses.png",
        "samples/step_000003.png",
    }  # the newest grid only; no training state without --with-state
    assert pushed["model.safetensors"] == (run / "model.safetensors").read_bytes()
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # the card went into the upload only

    card = ModelCard(pushed["README.md"].decode())
    meta = card.data
    assert meta.library_name == "ponogan" and meta.pipeline_tag == "image-to-image" and meta.license == "mit"
    assert {"pix2pix", "pono-ms"} <= set(meta.tags) and meta.datasets == ["ponogan-glyphs"]
    assert {r.metric_type: r.metric_value for r in meta.eval_results} == {"l1": 0.25, "psnr": 12.5}
    assert get_family("pix2pix").paper in card.text and "Positional Normalization" in card.text
    assert "(samples/step_000003.png)" in card.text and "(losses.png)" in card.text
    assert 'from_pretrained("alice/tiny")' in card.text and "`tiny`: 3 steps on cpu" in card.text

    # a file the stand-in holds that no run folder needs is never downloaded (pickles above all)
    repo = hub.repos["alice/tiny"]
    repo["commits"][repo["refs"]["main"]]["evil.pt"] = b"pickle"
    folder = resolve_run("alice/tiny")
    assert folder.is_relative_to(tmp_path / "hf-cache")
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == [
        "README.md",
        "config.json",
        "losses.png",
        "metrics.json",
        "model.safetensors",
        "step_000003.png",
    ]

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    local = np.asarray(TranslationPipeline.from_pretrained(run, device="cpu")(image))
    remote = np.asarray(TranslationPipeline.from_pretrained("alice/tiny", device="cpu")(image))
    np.testing.assert_array_equal(local, remote)

    image.save(tmp_path / "in.png")
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                "alice/tiny",
                "--input",
                "in.png",
                "--output",
                "out",
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "in.png")), local)

    # offline: a cached run loads without a request, an uncached one is one line naming HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    hub.requests.clear()
    assert resolve_run("alice/tiny") == folder and hub.requests == []
    with pytest.raises(CommandError, match="HF_HUB_OFFLINE=1 forbids"):
        resolve_run("alice/other")
    constants.HF_HUB_OFFLINE = False

    # a local folder of the same name wins, with no request
    (tmp_path / "alice" / "tiny").mkdir(parents=True)
    assert resolve_run("alice/tiny") == Path("alice/tiny") and hub.requests == []

    # the app: its own HF_HUB_OFFLINE=1 (no outbound network) still lets a Hub --checkpoint through
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the user's setting; restored afterwards
    spec = importlib.util.spec_from_file_location("ponogan_app", Path(__file__).parents[1] / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    assert main(["push", str(run), "--repo", "dave/app"]) == 0
    args = app.parse_args(["--checkpoint", "dave/app", "--checkpoints-dir", str(tmp_path / "none")])
    runs, default, _ = app.collect_checkpoints(args)
    assert default == "dave/app" and runs[default].path == resolve_run("dave/app")
    assert constants.HF_HUB_OFFLINE is False

    # --with-state to a branch: the state travels, and a load of that revision still leaves it behind
    assert main(["push", str(run), "--repo", "bob/tiny", "--revision", "dev", "--with-state"]) == 0
    pushed = repo_files(hub, "bob/tiny", "dev")
    assert {"state/latest", "state/step_000003/optimizers.pt"} <= set(pushed)
    assert "README.md" not in repo_files(hub, "bob/tiny")  # main untouched
    assert 'revision="dev"' in pushed["README.md"].decode()
    folder = resolve_run("bob/tiny", revision="dev")
    assert not (folder / "state").exists() and (folder / "model.safetensors").is_file()

    # a second push replaces the generated card, but keeps a card edited on the Hub
    assert main(["push", str(run), "--repo", "alice/tiny"]) == 0
    repo["commits"][repo["refs"]["main"]]["README.md"] = b"# edited on the Hub\n"
    assert main(["push", str(run), "--repo", "alice/tiny", "--message", "again"]) == 0
    assert repo_files(hub, "alice/tiny")["README.md"] == b"# edited on the Hub\n"
    assert "repo's own README.md kept" in capsys.readouterr().err

    # save_pretrained(push_to_hub=...): the same push from Python; a user's own README.md is the card
    own = tmp_path / "own"
    own.mkdir()
    (own / "README.md").write_text("# my own card\n")
    tiny_run(own, push_to_hub="carol/own", private=True)
    assert (
        hub.repos["carol/own"]["private"] and repo_files(hub, "carol/own")["README.md"] == b"# my own card\n"
    )


def test_names_that_do_not_load_are_one_line_each(hub, tmp_path, capsys, monkeypatch):
    hub.create("bob/bert")
    repo = hub.repos["bob/bert"]
    repo["commits"][repo["refs"]["main"]].update(
        {"config.json": b'{"model_type": "bert"}', "model.safetensors": b"not fetched"}
    )
    hub.create("bob/empty")
    cases = [
        ("alice/bad..name", UsageError, "valid Hub repo id"),
        ("alice/nothing", UsageError, "has no model repo"),
        ("bob/bert", UsageError, "not a ponogan run"),
        ("bob/empty", UsageError, "has no config.json"),
    ]
    for name, kind, words in cases:
        with pytest.raises(kind, match=words):
            resolve_run(name)
    assert not any(path.endswith("model.safetensors") for _, path in hub.requests)  # foreign weights stay
    with pytest.raises(UsageError, match="no revision nope"):
        resolve_run("bob/empty", revision="nope")
    with pytest.raises(UsageError, match="applies to a Hub repo id"):
        resolve_run(tmp_path, revision="main")
    assert resolve_run("checkpoints_typo") == Path("checkpoints_typo")  # not an id: the caller reports it
    (tmp_path / "runs").mkdir()
    assert resolve_run("runs/typo") == Path("runs/typo")  # under a local folder: a missing local run

    # a push never replaces another library's model
    capsys.readouterr()
    assert main(["push", str(tiny_run(tmp_path / "run")), "--repo", "bob/bert"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a ponogan run" in err
    assert repo_files(hub, "bob/bert")["model.safetensors"] == b"not fetched"

    # no token: the Hub's 401 is one line saying how to log in
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    assert main(["push", str(tmp_path / "run"), "--repo", "alice/x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused the credentials (401)" in err and "hf auth login" in err
    monkeypatch.setenv("HF_TOKEN", "hf_standin")

    # no network: one CommandError line (a closed port on 127.0.0.1 answers at once)
    closed = f"http://127.0.0.1:{_closed_port()}"
    constants.ENDPOINT = closed
    constants.HUGGINGFACE_CO_URL_TEMPLATE = closed + "/{repo_id}/resolve/{revision}/{filename}"
    with pytest.raises(CommandError, match="cannot reach the Hub"):
        resolve_run("alice/tiny")

    # through the commands: exit status and one error: line
    capsys.readouterr()
    argv = {
        "translate": ["translate", "--checkpoint", "carol/never", "--input", "x.png", "--output", "out"],
        "eval": ["eval", "--checkpoint", "bob/bert", "--data", "glyphs", "--out", "ev", "--record"],
        "push": ["push", str(tmp_path), "--repo", "alice/x"],
        "push id": ["push", str(tmp_path), "--repo", "not-an-id"],
        "push offline": ["push", str(tiny_run(tmp_path / "run")), "--repo", "alice/x"],
    }
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    expected = {
        "translate": (1, "cannot reach the Hub"),
        "eval": (2, "drop --record"),
        "push": (2, "not a run folder"),
        "push id": (2, "user/name"),
        "push offline": (1, "pushing to alice/x on http://127.0.0.1"),
    }
    for key, args in argv.items():
        status, words = expected[key]
        assert main(args) == status, key
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and words in err, (key, err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "ev").exists()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_file_names_match_the_run_folder():
    """``ponogan.sharing.files`` takes its names from the run-folder contract the writers use."""
    from ponogan.core.run_folder import RunFolder

    folder = RunFolder("run")
    assert (folder.config.name, folder.model.name) == (files.CONFIG_NAME, files.WEIGHTS_NAME)
    assert (
        folder.metrics.name,
        folder.samples_dir.name,
        folder.state_dir.name,
    ) == (files.METRICS_JSON, files.SAMPLES_DIR, files.STATE_DIR)
