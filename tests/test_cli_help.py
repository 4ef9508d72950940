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
