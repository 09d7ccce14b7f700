"""The ``podium`` command: one Typer app joining the command groups (one module each).

The leaderboard's own commands (``podium leaderboard …``) are mounted from
:mod:`leaderboard.cli`, lazily: the CLI is where the engine and the leaderboard meet.
Every deliberate error (:class:`~tuner.errors.PodiumError`) is printed as one line on
stderr and exits with its ``exit_code`` (2 for bad input), never with a traceback.
"""

from __future__ import annotations

import sys

import typer

from tuner.cli.backends import backends_app
from tuner.cli.demo import demo_command
from tuner.cli.export import export_command
from tuner.cli.hardware import hardware_app
from tuner.cli.knowledge import knowledge_app
from tuner.cli.optimize import optimize_command
from tuner.cli.report import report_command
from tuner.cli.tournament import register_command, submit_command, tournament_app
from tuner.cli.trial import trial_app
from tuner.cli.verify import referee_command, reproduce_command
from tuner.cli.workloads import workloads_app
from tuner.errors import PodiumError, one_line

app = typer.Typer(name="podium", no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Podium: search, measure and rank ONNX serving configurations.")
app.add_typer(workloads_app, name="workloads")
app.add_typer(hardware_app, name="hardware")
app.add_typer(backends_app, name="backends")
app.add_typer(trial_app, name="trial")
app.command("optimize")(optimize_command)
app.add_typer(knowledge_app, name="knowledge")
app.add_typer(tournament_app, name="tournament")
app.command("register")(register_command)
app.command("submit")(submit_command)
app.command("reproduce")(reproduce_command)
app.command("referee")(referee_command)
app.command("demo")(demo_command)
app.command("export")(export_command)
app.command("report")(report_command)


def _mount_leaderboard() -> None:
    try:
        from leaderboard.cli import app as leaderboard_app
    except ImportError:
        return
    app.add_typer(leaderboard_app, name="leaderboard", help="The tournament leaderboard service.")


_mount_leaderboard()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; maps errors to exit codes."""
    try:
        code = app(args=argv, standalone_mode=False)
    except PodiumError as exc:
        print(f"podium: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except (typer.Exit, SystemExit) as exc:
        return int(getattr(exc, "exit_code", getattr(exc, "code", 0)) or 0)
    except typer.Abort:
        print("podium: aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("podium: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if hasattr(exc, "format_message"):  # a usage error from Typer's bundled Click
            print(f"podium: error: {one_line(exc.format_message())}", file=sys.stderr)
            return 2
        print(f"podium: internal error: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0
