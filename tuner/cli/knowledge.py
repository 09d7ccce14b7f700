"""``podium knowledge …``: inspect, share and merge what past searches learned."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tuner.cli.output import console

knowledge_app = typer.Typer(help="The knowledge store that warm-starts searches.",
                            no_args_is_help=True)


@knowledge_app.command("stats")
def stats_command() -> None:
    """How many trials and (workload, hardware) pairs are known, and from where."""
    from tuner.knowledge.store import KnowledgeStore

    found = KnowledgeStore().stats()
    console.print(f"{found['path']}: {found['trials']} trials, "
                  f"{found['pairs']} (workload, hardware) pairs")
    table = Table(title="sources")
    table.add_column("source")
    table.add_column("trials", justify="right")
    for source, count in found["sources"].items():
        table.add_row(source, str(count))
    if found["sources"]:
        console.print(table)
    if found["searches"]:
        shown = ", ".join(f"{name} {count}" for name, count in found["searches"].items())
        console.print(f"cold searches by sampler (what `--sampler auto` learns from): {shown}")


@knowledge_app.command("export")
def export_command(path: Path = typer.Argument(..., help="JSON-lines file to write")) -> None:
    """Write every known trial to a JSON-lines file that another machine can import."""
    from tuner.knowledge.store import KnowledgeStore

    console.print(f"exported {KnowledgeStore().export(path)} trials to {path}")


@knowledge_app.command("import")
def import_command(path: Path = typer.Argument(..., exists=True, dir_okay=False,
                                               help="a file from `podium knowledge export`"),
                   ) -> None:
    """Merge an exported file; trials already known are skipped, so importing twice is safe."""
    from tuner.knowledge.store import KnowledgeStore

    console.print(f"imported {KnowledgeStore().import_(path)} new trials from {path}")


@knowledge_app.command("pull")
def pull_command(
    url: str | None = typer.Option(None, help="the leaderboard's base URL (default: the "
                                   "configured one, see `podium register`)"),
    tournament: list[str] | None = typer.Option(None, "--tournament", "-t",
                                                help="only this tournament (repeatable)"),
) -> None:
    """Import a leaderboard's accepted and verified results; pulling twice adds nothing."""
    from tuner.cli.tournament import get_tournament, open_client
    from tuner.knowledge.pull import pull
    from tuner.knowledge.store import KnowledgeStore

    with open_client(url=url) as client:
        for slug in tournament or []:
            get_tournament(client, slug)  # a one-line error for a name that is not there
        report = pull(client, KnowledgeStore(), tournaments=tournament or None)
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items()))
    console.print(f"pulled {report.read} results from {report.tournaments} tournament(s) at "
                  f"{client.url}: {report.new} new" + (f"; skipped {skipped}" if skipped else ""),
                  soft_wrap=True)
