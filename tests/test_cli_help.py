"""Every command's ``--help`` answers without importing torch (so in well under a second), and shows
the defaults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ponogan.cli import COMMANDS

PROBE = """
import sys
from ponogan.cli import main
try:
    main([{command!r}, "--help"])
except SystemExit:
    pass
print("TORCH" if "torch" in sys.modules else "NO-TORCH")
"""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_imports_no_torch(command):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(command=command)], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip().endswith("NO-TORCH"), proc.stdout[-500:] + proc.stderr[-500:]
    assert "usage: ponogan" in proc.stdout


def test_train_script_help_shows_defaults(capsys):
    from ponogan.cli.train import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--list-presets" in out and "pix2pix_pono_ms_glyphs" in out and "auto" in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_flag_is_one_error_line_with_exit_2(command, capsys):
    """argparse's own refusals (an unknown flag, a missing required argument) are one line too."""
    from ponogan.cli import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--no-such-flag"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: ponogan {command}")
    assert f"ponogan {command} --help" in err and "usage:" not in err


def test_unknown_command_is_one_error_line(capsys):
    from ponogan.cli import main

    assert main(["bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown command 'bogus'") and "translate" in err and err.count("\n") == 1


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_states_the_exit_statuses(command, capsys):
    from ponogan.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 done" in out and "2 usage error" in out


def test_train_script_bad_value_is_one_line(capsys):
    from ponogan.cli.train import main

    with pytest.raises(SystemExit) as exc:
        main(["--max-steps", "many"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "train.py --help" in err
