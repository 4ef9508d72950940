"""The ``ponogan`` command: one entry point, one module per subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (and optionally
``parse_args(parser, argv)``); it is imported
only when that subcommand runs, so ``ponogan data ...`` never pays for importing gradio.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from ponogan.core.messages import EXIT_STATUS_HELP, EXIT_USAGE, exit_status, first_line, print_error

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("ponogan.cli.train", "train a translator from a YAML preset"),
    "translate": ("ponogan.cli.translate", "translate a folder of images with a trained checkpoint"),
    "eval": (
        "ponogan.cli.eval",
        "FID / KID / LPIPS / L1 / PSNR / SSIM / diversity of a run or two folders",
    ),
    "data": ("ponogan.cli.data", "generate the built-in glyph data or prepare public datasets"),
    "export": ("ponogan.cli.export", "export a run's generator to ONNX or a torch.export program"),
    "import-official": (
        "ponogan.cli.import_official",
        "convert official CycleGAN/pix2pix/PONO weights to a run",
    ),
    "weights": ("ponogan.cli.weights", "download the FID / LPIPS weight files, checksum-verified"),
    "plot": ("ponogan.cli.plot", "compare runs' loss curves and metrics in one picture"),
    "push": ("ponogan.cli.push", "upload a run with its model card to the Hugging Face Hub"),
}


class CommandParser(argparse.ArgumentParser):
    """argparse on the one error path: an unknown flag or a bad value is one ``error:`` line that names
    ``--help``, exit status 2, instead of argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        print_error(f"{self.prog}: {message}; see `{self.prog} --help`", EXIT_USAGE)
        raise SystemExit(EXIT_USAGE)


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default in ``--help``, unless its help already says it or it has none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or action.default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ponogan <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `ponogan <command> --help` for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        return print_error(f"unknown command {name!r}; valid commands: {', '.join(COMMANDS)}", EXIT_USAGE)
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = CommandParser(
        prog=f"ponogan {name}", description=help_, epilog=EXIT_STATUS_HELP, formatter_class=HelpFormatter
    )
    module.add_arguments(parser)
    parse = getattr(module, "parse_args", None)  # a module may take extra syntax (dotted overrides)
    args = parse(parser, rest) if parse else parser.parse_args(rest)
    return run_command(module.run, args)


def run_command(run, args: argparse.Namespace) -> int:
    """``run(args)`` with the one error path: a ``UsageError`` (exit 2) or ``CommandError`` (exit 1) is
    printed as one ``error:`` line; so is any other exception, as an internal error (exit 1), unless
    ``PONOGAN_TRACEBACK=1`` asks for the traceback."""
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        return print_error("interrupted", 130)
    except Exception as err:
        if os.environ.get("PONOGAN_TRACEBACK") == "1":
            raise
        if hasattr(err, "exit_status"):  # UsageError (2), CommandError (1)
            return print_error(err, exit_status(err))
        return print_error(
            f"internal error ({type(err).__name__}: {first_line(err)}); "
            "please report it, with the traceback from PONOGAN_TRACEBACK=1",
            1,
        )


if __name__ == "__main__":
    sys.exit(main())
