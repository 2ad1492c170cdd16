"""`ornet` command line: dispatch to one module per subcommand, map errors to exit codes.

Exit codes: 0 ok, 2 bad input or usage (one line on stderr naming the file, line or value; a
full disk, a folder another process writes, a lost DDP process are told the same way),
1 unexpected failure (a bug: the traceback is printed), 130 interrupted (Ctrl+C; `ornet train`
saved its state first, see `errors.Interrupted`), 143 stopped by SIGTERM (`errors.Preempted`). Each subcommand
module is imported only when it runs, so `ornet --help` and torch-free commands do not pay
torch's import.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module under ornet.commands, one-line help). Kept here, import-free, for --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("synth", "generate the synthetic WSOL benchmark (CUB layout, with masks)"),
    "check-data": ("check_data", "validate a dataset and print per-split counts and every problem"),
    "methods": ("methods", "list the WSOL methods a config can train (wsol_method), with their stages"),
    "train": ("train", "train the stages of a config's method (ORNet or the CAM baseline), then evaluate"),
    "evaluate": ("evaluate", "evaluate a trained run or checkpoint on a split"),
    "evaluate-maps": ("evaluate_maps", "score saved maps against wsolevaluation metadata (MaxBoxAcc, PxAP)"),
    "localize": ("localize", "predict boxes and maps for your own images with a trained model"),
    "figures": ("figures", "draw a run's figures (overlay, evolution, histogram, failures, ...)"),
    "compare": ("compare", "compare runs and evaluations on one page: metrics table, CSV, maps side by side"),
    "demo": ("demo", "generate synthetic data, train ORNet and CAM, compare them"),
    "import-release": ("import_release", "import the ORNet authors' released checkpoints as a run folder"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: ornet [-h] [--version] COMMAND [options]",
        "",
        "Weakly supervised object localization: ORNet (ICCV 2021), baselines and wsolevaluation metrics.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `ornet COMMAND --help` for the options of a command.",
              "Exit codes: 0 ok, 2 bad input or usage (also a full disk or a folder in use), 1 unexpected failure,",
              "130 interrupted (Ctrl+C), 143 stopped by SIGTERM."]
    return "\n".join(lines)


def error_line(prog: str, message: str, label: str = "error") -> str:
    """The one line printed for a user error (no traceback)."""
    message = " ".join(str(message).split())
    return f"{prog}: {label}: {message}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from . import __version__

        print(f"ornet {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(error_line("ornet", f"unknown command {name!r}; commands: {', '.join(COMMANDS)}"), file=sys.stderr)
        return 2
    module = importlib.import_module(f"ornet.commands.{COMMANDS[name][0]}")
    prog = f"ornet {name}"
    from .errors import OrnetError
    from .runtime.diskspace import disk_full_error, is_disk_full

    try:
        try:
            return int(module.main(rest, prog) or 0)
        except Exception as e:  # a full disk met by a writer that did not say so itself: the last net
            if is_disk_full(e):
                raise disk_full_error(None, e) from None
            raise
    except OrnetError as e:  # exit code 2, or the error's own (130 Ctrl+C, 143 SIGTERM: errors.Preempted)
        if not getattr(e, "quiet", False):  # quiet: another process of a DDP run says it
            print(error_line(prog, str(e), getattr(e, "label", "error")), file=sys.stderr)
        return int(getattr(e, "exit_code", 2))
    except BrokenPipeError:  # output piped into `head` and closed: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except BaseException:
        import traceback

        traceback.print_exc()
        print(f"{prog}: unexpected failure (a bug; please report it with the traceback above)", file=sys.stderr)
        return 1


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
