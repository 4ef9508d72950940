"""``train`` never loses a user's files and fails with one ``error: ...`` line, never a traceback:
run folders it must not write into, ``--resume`` with nothing (or something broken) to resume, bad
config files, absurd widths and seeds, a full disk during a save, a second Ctrl-C, and the leftovers
of killed runs (damaged states are set aside, never deleted), one run per folder, file modes, and
resumes that would train nothing or change the model. Tiny pix2pix/MUNIT runs on the built-in glyph
data, through the CLI's ``main(argv)``."""

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch
import yaml
from test_train_run import TINY_DATA, TINY_LOOP, TINY_MODELS  # tests/ is on sys.path

import ponogan.training.loop as loop
import ponogan.training.state as checkpoint
from ponogan.cli.train import main
from ponogan.core.run_folder import LOCK
from ponogan.models.hub import load_pretrained
from ponogan.training import latest_state, list_states

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path: Path, family: str = "pix2pix", **train) -> Path:
    """A YAML preset of a 2-step run of tiny nets at 32 px (no samples, evaluation or periodic saves)."""
    values = {
        "family": family,
        "model": TINY_MODELS[family],
        "data": {**TINY_DATA, "options": {**TINY_DATA["options"], "paired": family == "pix2pix"}},
        "train": {**TINY_LOOP, **train},
    }
    path = tmp_path / f"tiny_{family}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``main(argv)`` in this process: exit status, stdout, stderr. An escaping exception fails the test
    (a ``KeyboardInterrupt`` would otherwise stop the whole pytest session)."""
    try:
        status = main([str(a) for a in argv])
    except KeyboardInterrupt as err:
        pytest.fail(f"KeyboardInterrupt escaped main(): {err}")
    out, err = capsys.readouterr()
    return status, out, err


def error_line(err: str) -> str:
    """The one ``error: ...`` line of stderr (progress bars may be there too, a traceback never)."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def no_networks(monkeypatch):
    """Fail the test if a run gets as far as building (allocating) its networks."""

    def refuse(*args, **kwargs):
        raise AssertionError("the networks were built: the config should have been refused first")

    monkeypatch.setattr(loop, "create_trainer", refuse)


@pytest.fixture
def trained(tmp_path, capsys):
    """A finished 2-step run with a state at step 1 and one at step 2 (the latest)."""
    config = tiny_config(tmp_path, save_every=1)
    run = tmp_path / "run"
    status, _, err = run_cli(capsys, "--config", config, "--output-dir", run)
    assert status == 0, err
    assert [p.name for p in list_states(run)] == ["step_000001", "step_000002"]
    return config, run


# ---------------------------------------------------------------- run folders
@pytest.mark.parametrize("resume", [False, True], ids=["new-run", "resume"])
def test_an_exported_model_without_training_state_is_never_overwritten(tmp_path, capsys, no_networks, resume):
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights of a model someone exported")
    (folder / "config.json").write_text('{"family": "pix2pix"}')
    before = files_of(folder)
    flags = ["--resume"] if resume else []
    status, _, err = run_cli(capsys, "--config", tiny_config(tmp_path), "--output-dir", folder, *flags)
    line = error_line(err)
    assert status == 2 and "exported model (config.json, model.safetensors)" in line
    if resume:
        assert "nothing to resume" in line
    else:
        assert "another --output-dir" in line and "--resume" in line
    assert files_of(folder) == before and sorted(p.name for p in folder.iterdir()) == sorted(before)


def test_a_folder_with_other_files_is_refused(tmp_path, capsys, no_networks):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    status, _, err = run_cli(capsys, "--config", tiny_config(tmp_path), "--output-dir", folder)
    line = error_line(err)
    assert status == 2 and "not a ponogan run folder" in line and "holiday.jpg" in line
    assert [p.name for p in folder.iterdir()] == ["holiday.jpg"]


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_resume_with_nothing_to_resume_fails(tmp_path, capsys, no_networks, kind):
    folder = tmp_path / "run"
    if kind == "empty":
        folder.mkdir()
    status, _, err = run_cli(capsys, "--config", tiny_config(tmp_path), "--resume", "--output-dir", folder)
    line = error_line(err)
    assert status == 2 and "nothing to resume" in line and str(folder) in line
    assert folder.exists() == (kind == "empty") and not (folder.exists() and any(folder.iterdir()))


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_output_dir_that_is_a_file_is_refused(tmp_path, capsys, no_networks, where):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    target = blocker if where == "file" else blocker / "run"
    status, _, err = run_cli(capsys, "--config", tiny_config(tmp_path), "--output-dir", target)
    line = error_line(err)
    assert status == 2 and f"{blocker} is a file" in line
    assert blocker.read_text() == "keep me"


def test_a_rerun_of_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "log.jsonl").write_text('{"step": 1, "G_L1": 9.0}\n{"step": 2, "G_')  # cut short by a kill
    status, _, err = run_cli(capsys, "--config", tiny_config(tmp_path), "--output-dir", run)
    assert status == 0, err
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r for r in log if "eval" not in r]
    assert [r["step"] for r in losses] == [1, 2] and losses[0]["G_L1"] != 9.0


# ---------------------------------------------------------------- config files
@pytest.mark.parametrize(
    "content, words",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", ["not a YAML text file", "UTF-8"]),
        ("family: pix2pix\nrun_name: caf\xe9\n".encode("latin-1"), ["not a YAML text file", "UTF-8"]),
        (b"1: 2\nfamily: pix2pix\n", ["config keys must be names", "1"]),
        (b"train:\n  max_steps: [3\n", ["not valid YAML", "line"]),
    ],
    ids=["binary", "latin-1", "number-key", "bad-yaml"],
)
def test_a_config_that_is_not_a_yaml_preset_is_one_line(tmp_path, capsys, no_networks, content, words):
    config = tmp_path / "preset.yaml"
    config.write_bytes(content)
    status, _, err = run_cli(capsys, "--config", config, "--output-dir", tmp_path / "run")
    line = error_line(err)
    assert status == 2 and all(word in line for word in words), line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"train": {"family": "pix2pix", ', ["cannot read the run's saved config", "--config"]),
        ('{"family": "pix2pix", "generators": {}}', ["no 'train' entry", "--config"]),
        ("[1, 2]", ["cannot read the run's saved config", "JSON object"]),
        ("\udcff", ["cannot read the run's saved config"]),
    ],
    ids=["garbled", "no-train", "not-a-mapping", "not-utf8"],
)
def test_resume_with_a_broken_saved_config_is_one_line(tmp_path, capsys, no_networks, content, words):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    status, _, err = run_cli(capsys, "--resume", "--output-dir", run)
    line = error_line(err)
    assert status == 2 and "config.json" in line and all(word in line for word in words), line


@pytest.mark.parametrize(
    "override, words",
    [
        ("model.generator_kwargs.ngf=-3", ["model.generator_kwargs.ngf", "1 to 1024", "-3"]),
        ("model.generator_kwargs.ngf=4096", ["model.generator_kwargs.ngf", "1 to 1024", "4096"]),
        ("model.discriminator_kwargs.ndf=0", ["model.discriminator_kwargs.ndf", "1 to 1024"]),
        ("model.generator_kwargs.ngf=2.5", ["model.generator_kwargs.ngf", "integer"]),
    ],
    ids=["negative", "huge", "zero", "fraction"],
)
def test_absurd_widths_are_refused_before_anything_is_allocated(
    tmp_path, capsys, no_networks, override, words
):
    status, _, err = run_cli(
        capsys, "--config", tiny_config(tmp_path), "--output-dir", tmp_path / "run", override
    )
    line = error_line(err)
    assert status == 2 and all(word in line for word in words), line


def test_networks_too_big_for_the_memory_are_refused_before_allocating(
    tmp_path, capsys, no_networks, monkeypatch
):
    monkeypatch.setattr(loop, "_memory_bytes", lambda device: 8 << 30)  # an 8 GiB machine
    # every width is allowed, but unet_256 at ngf 1024 has ~14 billion parameters
    status, _, err = run_cli(
        capsys,
        "--config",
        tiny_config(tmp_path),
        "--output-dir",
        tmp_path / "run",
        "model.generator_kwargs.ngf=1024",
        "model.generator_kwargs.num_downs=8",
    )
    line = error_line(err)
    assert status == 2 and "billion parameters" in line and "8 GiB of RAM" in line and "ngf" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "family, override",
    [
        ("munit", f"--seed={2**70}"),
        ("munit", f"train.style_seed={2**70}"),
        ("pix2pix", "seed=-1"),
        ("pix2pix", f"seed={2**32}"),
    ],
)
def test_seeds_outside_numpys_range_are_refused(tmp_path, capsys, no_networks, family, override):
    config = tiny_config(tmp_path, family)
    status, _, err = run_cli(capsys, "--config", config, "--output-dir", tmp_path / "run", override)
    line = error_line(err)
    assert status == 2 and "[0, 2**32)" in line and "4294967295" in line, line


# ---------------------------------------------------------------- resume from broken states
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage, not a file of a training state" * 8)


def _pickled(path: Path) -> None:
    torch.save({"rng": Namespace(seed=1), "extra": {}}, path)  # a torch file with a pickled object in it


def _plain_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps({"rng": Namespace(seed=1), "extra": {}}))


DAMAGE = [
    ("nets.safetensors", _truncate, "nets.safetensors is damaged"),
    ("optimizers.pt", _garbage, "optimizers.pt is not a valid torch file"),
    ("rank_0.pt", _pickled, "rank_0.pt holds pickled Python objects (argparse.Namespace)"),
    ("schedulers.pt", _plain_pickle, "schedulers.pt holds pickled Python objects (a plain pickle)"),
    ("trainer_state.json", _garbage, "trainer_state.json is damaged"),
]


@pytest.mark.parametrize("name, damage, words", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_resume_falls_back_to_the_previous_state_when_the_latest_is_broken(
    trained, capsys, name, damage, words
):
    config, run = trained
    damage(run / "state" / "step_000002" / name)
    damaged = files_of(run / "state" / "step_000002")
    status, out, err = run_cli(capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 3)
    assert status == 0, err
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "step_000002" in warnings[0] and words in warnings[0], err
    assert "set aside as state/step_000002.damaged" in warnings[0]
    assert "resuming from step_000001" in warnings[0]
    assert "resumed from" in out and "(step 1)" in out and "at step 3" in out
    assert latest_state(run).name == "step_000003"
    assert files_of(run / "state" / "step_000002.damaged") == damaged  # kept, byte for byte


def test_resume_when_every_state_is_broken_is_one_line_and_keeps_them(tmp_path, capsys):
    config, run = tiny_config(tmp_path), tmp_path / "run"
    assert run_cli(capsys, "--config", config, "--output-dir", run)[0] == 0
    _pickled(run / "state" / "step_000002" / "rank_0.pt")
    before = files_of(run)
    status, _, err = run_cli(capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 3)
    line = error_line(err)
    assert status == 2 and "every training state" in line and "step_000002 (rank_0.pt holds pickled" in line
    assert "kept" in line and "another --output-dir" in line
    assert files_of(run) == before


@pytest.mark.parametrize("name", checkpoint.COMPLETE_FILES)
def test_a_state_missing_any_file_is_set_aside_and_the_run_resumes_from_the_previous(trained, capsys, name):
    config, run = trained
    latest = run / "state" / "step_000002"
    (latest / name).unlink()
    kept = files_of(latest)
    status, out, err = run_cli(capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 3)
    assert status == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"step_000002 is damaged ({name} is missing)" in warnings[0], err
    assert "set aside as state/step_000002.damaged" in warnings[0] and "leftover" not in err
    assert "(step 1)" in out and "at step 3" in out
    assert files_of(run / "state" / "step_000002.damaged") == kept  # nets.safetensors included
    assert [p.name for p in list_states(run)] == ["step_000002", "step_000003"]  # step 2 trained again


@pytest.mark.parametrize("resume", [True, False], ids=["resume", "new-run"])
def test_a_run_whose_every_state_lacks_a_file_is_refused_naming_them(trained, capsys, resume):
    config, run = trained
    for step in (1, 2):
        (run / "state" / f"step_00000{step}" / "schedulers.pt").unlink()
    before = files_of(run)
    flags = ["--resume", "--max-steps", 3] if resume else []
    status, _, err = run_cli(capsys, "--config", config, "--output-dir", run, *flags)
    line = error_line(err)
    assert status == 2 and "every training state" in line and "damaged" in line and "kept" in line
    assert "step_000001 (schedulers.pt is missing); step_000002 (schedulers.pt is missing)" in line
    assert "no training state" not in line
    assert files_of(run) == before


def _retarget(state: Path, step: int) -> None:
    """Edit the step a state's ``trainer_state.json`` records (as a hand edit would)."""
    meta = json.loads((state / "trainer_state.json").read_text())
    (state / "trainer_state.json").write_text(json.dumps({**meta, "step": step}))


def test_a_state_whose_step_disagrees_with_its_folder_is_set_aside(trained, capsys):
    config, run = trained
    _retarget(run / "state" / "step_000002", 260)
    status, out, err = run_cli(capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 3)
    assert status == 0, err
    assert "trainer_state.json says step 260, but the folder is step_000002" in err
    assert "set aside as state/step_000002.damaged" in err and "(step 1)" in out and "at step 3" in out


def test_a_step_that_disagrees_with_the_schedulers_is_damaged(trained):
    _, run = trained
    moved = run / "state" / "step_000260"  # folder and marker agree, the schedulers stepped twice
    (run / "state" / "step_000002").rename(moved)
    _retarget(moved, 260)
    empty = checkpoint.TrainingState(nets={}, optimizers={}, schedulers={})
    with pytest.raises(checkpoint.BrokenStateError, match="says step 260, but scheduler 'G' stepped 2 times"):
        checkpoint.load_state(moved, empty, rank=0, world_size=1)


def _fake_state(folder: Path, step: int) -> None:
    folder.mkdir(parents=True)
    for name in checkpoint.COMPLETE_FILES:
        (folder / name).write_text(json.dumps({"step": step}))


def test_the_latest_pointer_never_leaves_the_run_folder(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "elsewhere"
    _fake_state(run / "state" / "step_000001", 1)
    _fake_state(outside / "state" / "step_000009", 9)
    pointer = run / "state" / "latest"
    for target in [str(outside / "state" / "step_000009"), "../../elsewhere/state/step_000009", "..", "/"]:
        pointer.write_text(target + "\n")
        assert latest_state(run) == run / "state" / "step_000001", target
    pointer.write_text("step_000001\n")
    assert latest_state(run) == run / "state" / "step_000001"


# ---------------------------------------------------------------- leftovers of killed runs
def test_start_sweeps_the_leftovers_of_killed_runs_and_nothing_else(trained, capsys):
    config, run = trained
    state = run / "state"
    leftovers = [
        run / ".tmpAb12Cd",
        run / ".model.safetensors.k2_j3h4x.tmp",
        run / ".config.json.abc123.tmp",
        run / ".losses.png.0a1b2c3d.tmp",
        run / "samples" / ".step_000007.png.0a1b2c3d.tmp",
        state / ".latest.0a1b2c3d.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"x" * 29)
    (state / ".tmp-step_000003").mkdir()
    (state / ".tmp-step_000003" / "rank_0.pt").write_bytes(b"half")
    (state / ".del-step_000000").mkdir()
    (state / ".del-step_000000" / "optimizers.pt").write_bytes(b"half")
    # an incomplete state is never a leftover: it is kept (resume sets it aside when it gets to it)
    (state / "step_000001" / "nets.safetensors").unlink()
    # kept too: the user's files, names that only look like ours, a step folder with no marker
    kept = [run / "notes.txt", run / ".tmp_mine", run / ".tmpAB12", state / "step_000000" / "optimizers.pt"]
    for path in kept:
        path.parent.mkdir(exist_ok=True)
        path.write_text("mine")
    status, out, err = run_cli(capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 3)
    assert status == 0, err
    assert "removed 8 leftover(s)" in err
    for path in [*leftovers, state / ".tmp-step_000003", state / ".del-step_000000"]:
        assert not path.exists(), path
    assert all(path.read_text() == "mine" for path in kept)
    assert sorted(p.name for p in (state / "step_000001").iterdir()) == sorted(
        set(checkpoint.COMPLETE_FILES) - {"nets.safetensors"}
    )
    assert [p.name for p in list_states(run)] == ["step_000002", "step_000003"]


def test_a_state_caught_between_two_renames_is_put_back(tmp_path):
    run = tmp_path / "run"
    _fake_state(run / "state" / ".old-step_000004", 4)  # the old copy, set aside, of a step saved again
    _fake_state(run / "state" / ".tmp-step_000006", 6)  # finished, but not yet renamed into place
    checkpoint.sweep_leftovers(run)
    assert [p.name for p in list_states(run)] == ["step_000004", "step_000006"]


# ---------------------------------------------------------------- full disk, second Ctrl-C
@pytest.mark.parametrize("failure", ["enospc", "torch-full"])
def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_previous_state(
    tmp_path, capsys, monkeypatch, failure
):
    config, run = tiny_config(tmp_path, max_steps=4, save_every=2), tmp_path / "run"
    if failure == "enospc":
        real = checkpoint.save_file

        def writer(tensors, path, *args, **kwargs):
            if ".tmp-step_000004" in str(path):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(tensors, path, *args, **kwargs)

        monkeypatch.setattr(checkpoint, "save_file", writer)
    else:  # torch.save reports a full disk as a RuntimeError
        real = torch.save

        def writer(obj, path, *args, **kwargs):
            if ".tmp-step_000004" in str(path):
                monkeypatch.setattr(checkpoint, "_free_bytes", lambda path: 0)
                raise RuntimeError(
                    "[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0\n"
                    "basic_ios::clear: iostream error"
                )
            return real(obj, path, *args, **kwargs)

        monkeypatch.setattr(torch, "save", writer)
    status, _, err = run_cli(capsys, "--config", config, "--output-dir", run)
    line = error_line(err)
    assert status == 1 and "the disk is full: could not write" in line and ".tmp-step_000004" in line
    assert f"the previous state {run / 'state' / 'step_000002'} is intact" in line
    assert [p.name for p in (run / "state").iterdir()] == ["latest", "step_000002"]
    monkeypatch.undo()  # space freed: the run continues from the intact state
    status, out, err = run_cli(capsys, "--config", config, "--output-dir", run, "--resume")
    assert status == 0 and "(step 2)" in out and "at step 4" in out, err


def _signals_twice() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGINT)


def test_a_second_ctrl_c_during_a_save_waits_for_the_save(tmp_path, capsys, monkeypatch):
    real = loop.save_state

    def interrupted_save(*args, **kwargs):
        _signals_twice()  # Ctrl-C, Ctrl-C while the checkpoint is being written
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "save_state", interrupted_save)
    run = tmp_path / "run"
    status, out, err = run_cli(
        capsys, "--config", tiny_config(tmp_path, max_steps=1000, save_every=2), "--output-dir", run
    )
    assert status == 0 and "Traceback" not in err, err
    assert "still writing the checkpoint" in err and "stopped (signal) at step 3" in out
    assert [p.name for p in list_states(run)] == ["step_000002", "step_000003"]
    assert load_pretrained(run)[1]["step"] == 3


def test_a_second_ctrl_c_outside_a_save_stops_at_once_with_one_line(tmp_path, capsys, monkeypatch):
    real, calls = loop.to_device, []

    def batch_then_ctrl_c(*args):
        calls.append(1)
        if len(calls) == 4:  # during step 4, after the save at step 2
            _signals_twice()
        return real(*args)

    monkeypatch.setattr(loop, "to_device", batch_then_ctrl_c)
    run = tmp_path / "run"
    status, _, err = run_cli(
        capsys, "--config", tiny_config(tmp_path, max_steps=1000, save_every=2), "--output-dir", run
    )
    line = error_line(err)
    assert status == 130 and "second SIGINT" in line and str(run / "state" / "step_000002") in line
    assert [p.name for p in list_states(run)] == ["step_000002"]


# ---------------------------------------------------------------- one run per folder
HOLD_LOCK = """
import sys, time
from pathlib import Path
from ponogan.training.state import RunLock

lock = RunLock.acquire(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(600)
"""


@pytest.fixture
def lock_holder_process(tmp_path):
    """Start a process that takes a run folder's lock and keeps it: ``start(run_dir) -> Popen``."""
    procs = []

    def start(run_dir: Path) -> subprocess.Popen:
        script = tmp_path / "hold_lock.py"
        script.write_text(HOLD_LOCK)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        command = [sys.executable, str(script), str(run_dir)]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("resume", [True, False], ids=["resume", "new-run"])
def test_a_second_run_on_a_folder_in_use_is_refused_naming_the_pid(
    trained, capsys, lock_holder_process, resume
):
    config, run = trained
    if not resume:  # a run that has not saved yet: only its lock, log and samples are there
        run = run.with_name("fresh")
        (run / "samples").mkdir(parents=True)
    holder = lock_holder_process(run)
    before = files_of(run)
    flags = ["--resume", "--max-steps", 3] if resume else []
    status, _, err = run_cli(capsys, "--config", config, "--output-dir", run, *flags)
    line = error_line(err)
    assert status == 2 and "in use by another training run" in line and f"pid {holder.pid} on " in line
    assert "wait for it to finish" in line
    assert files_of(run) == before


def test_a_lock_left_by_a_killed_run_is_taken_over_with_one_line(trained, capsys, lock_holder_process):
    config, run = trained
    holder = lock_holder_process(run)
    holder.kill()  # kill -9: the lock file stays, naming the dead process
    holder.communicate()
    assert str(holder.pid) in (run / LOCK).read_text()
    status, out, err = run_cli(capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 3)
    assert status == 0 and "at step 3" in out, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "no longer running" in warnings[0] and f"pid {holder.pid}" in warnings[0]
    assert not (run / LOCK).exists()  # released at the end of the run


def test_a_stale_lock_does_not_make_a_fresh_folder_look_foreign(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text('{"pid": 999999, "host": "elsewhere", "started": "then"}\n')
    status, out, err = run_cli(capsys, "--config", tiny_config(tmp_path), "--output-dir", run)
    assert status == 0 and "at step 2" in out, err
    assert "pid 999999 on elsewhere" in err and "leftover" not in err
    assert not (run / LOCK).exists()


def test_the_run_holds_its_lock_while_it_trains(tmp_path, capsys, monkeypatch):
    seen = []
    real = loop._Run.save

    def save(self, elapsed):
        seen.append(checkpoint.lock_holder(self.run_dir))
        return real(self, elapsed)

    monkeypatch.setattr(loop._Run, "save", save)
    run = tmp_path / "run"
    assert run_cli(capsys, "--config", tiny_config(tmp_path), "--output-dir", run)[0] == 0
    assert len(seen) == 1 and f"pid {os.getpid()} on " in seen[0]
    assert checkpoint.lock_holder(run) is None


# ---------------------------------------------------------------- file modes
def test_every_file_of_a_run_has_the_umasks_mode(tmp_path, capsys):
    old = os.umask(0o002)
    try:
        run = tmp_path / "run"
        assert run_cli(capsys, "--config", tiny_config(tmp_path), "--output-dir", run)[0] == 0
    finally:
        os.umask(old)
    modes = {str(p.relative_to(run)): p.stat().st_mode & 0o777 for p in run.rglob("*") if p.is_file()}
    assert "model.safetensors" in modes and "state/step_000002/nets.safetensors" in modes
    assert all(mode == 0o664 for mode in modes.values()), modes


# ---------------------------------------------------------------- resume guards
def test_log_lines_that_are_not_utf8_json_are_kept_and_skipped(trained, capsys):
    config, run = trained
    log = run / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    foreign = [b"caf\xe9 \xff\xfe not utf-8\n", b"a note, not JSON\n"]
    log.write_bytes(lines[0] + foreign[0] + b"".join(lines[1:]) + foreign[1])
    status, out, err = run_cli(capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 3)
    assert status == 0 and "(step 2)" in out and "at step 3" in out, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "2 line(s) are not UTF-8 JSON records (line 2, " in warnings[0], err
    data = log.read_bytes()
    assert all(line in data for line in foreign)
    records = [json.loads(line) for line in data.splitlines() if line not in {f.strip() for f in foreign}]
    assert [r["step"] for r in records if "eval" not in r] == [1, 2, 3]


@pytest.mark.parametrize("max_steps", [2, 1])
def test_resume_with_nothing_left_to_train_is_one_line_and_writes_nothing(trained, capsys, max_steps):
    config, run = trained
    before = files_of(run)
    status, _, err = run_cli(
        capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", max_steps
    )
    line = error_line(err)
    assert status == 2 and "nothing to train" in line and "already at step 2" in line
    assert f"max_steps is {max_steps}" in line and "--max-steps above 2" in line
    assert files_of(run) == before


CHANGES = [
    ("model.shortcut=ms", "model.shortcut None -> 'ms'"),
    ("model.generator_kwargs.norm=instance", "model.generator_kwargs"),
    ("data.options.image_size=64", "data.options.image_size 32 -> 64"),
    ("data.batch_size=4", "data.batch_size 2 -> 4"),
]


@pytest.mark.parametrize("override, words", CHANGES, ids=[c[0].split("=")[0] for c in CHANGES])
def test_resume_refuses_a_changed_model(trained, capsys, override, words):
    config, run = trained
    before = files_of(run)
    status, _, err = run_cli(
        capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 3, override
    )
    line = error_line(err)
    assert (
        status == 2 and "as a different model" in line and words in line and "--allow-config-change" in line
    )
    assert files_of(run) == before


def test_allow_config_change_continues_and_records_the_change(trained, capsys):
    config, run = trained
    status, out, err = run_cli(
        capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 3,
        "--allow-config-change", "model.shortcut=ms",
    )  # fmt: skip
    assert status == 0 and "at step 3" in out, err
    assert "changed model (model.shortcut None -> 'ms')" in err
    change = {"step": 2, "changed": {"model.shortcut": [None, "ms"]}}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {"step": 2, "config_change": change["changed"]} in log
    assert load_pretrained(run)[1]["config_changes"] == [change]
    # the run is now PONO-MS: resuming it as such needs no flag, and the record stays
    status, out, err = run_cli(capsys, "--resume", "--output-dir", run, "--max-steps", 4)
    assert status == 0 and "at step 4" in out and "changed model" not in err, err
    assert load_pretrained(run)[1]["config_changes"] == [change]


def test_a_link_named_like_the_lock_is_never_followed(tmp_path, capsys):
    run, target = tmp_path / "run", tmp_path / "precious.txt"
    run.mkdir()
    target.write_text("keep me")
    (run / LOCK).symlink_to(target)
    status, _, err = run_cli(capsys, "--config", tiny_config(tmp_path), "--output-dir", run)
    line = error_line(err)
    assert status == 2 and "cannot open the run folder's lock" in line
    assert target.read_text() == "keep me" and (run / LOCK).is_symlink()


def test_a_damaged_state_in_the_way_of_a_save_is_set_aside(trained, capsys):
    config, run = trained
    (run / "state" / "latest").write_text("step_000001\n")  # resume goes to step 1, then saves step 2
    (run / "state" / "step_000002" / "optimizers.pt").unlink()
    kept = files_of(run / "state" / "step_000002")
    status, out, err = run_cli(capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 3)
    assert status == 0 and "(step 1)" in out and "at step 3" in out, err
    assert files_of(run / "state" / "step_000002.damaged") == kept
    assert [p.name for p in list_states(run)] == ["step_000002", "step_000003"]


def test_resume_at_the_last_step_writes_a_model_export_a_kill_left_out(trained, capsys):
    config, run = trained
    (run / "model.safetensors").unlink()  # killed (or the disk full) between the final state and the export
    status, out, err = run_cli(capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 2)
    assert status == 0 and "nothing to train; writing the model of step 2" in out, err
    assert load_pretrained(run)[1]["step"] == 2
    status, _, err = run_cli(capsys, "--config", config, "--output-dir", run, "--resume", "--max-steps", 2)
    assert status == 2 and "nothing to train" in error_line(err)
