"""``podium backends …``: the registered backends, where each came from, and its keys."""

from __future__ import annotations

import json
import warnings

import typer

from tuner.cli.output import console, errors

backends_app = typer.Typer(help="Inference backends (built-in and plugins).",
                           no_args_is_help=True)


@backends_app.command("list")
def list_backends(json_out: bool = typer.Option(False, "--json",
                                                help="print the declarations as JSON")) -> None:
    """List every registered backend with its precisions and configuration keys (domain,
    default, when it applies, whether it changes the artifact); a plugin that cannot load is
    listed with the reason."""
    from tuner.backends.registry import BackendPluginWarning, registrations

    with warnings.catch_warnings():  # a broken plugin is listed below, with its reason
        warnings.simplefilter("ignore", BackendPluginWarning)
        found = registrations()
    if json_out:
        console.print_json(json.dumps([_as_dict(r) for r in found], default=str))
        return
    for registration in found:
        backend = registration.backend
        if backend is None:
            errors.print(f"{registration.name} ({registration.source}, {registration.target}): "
                         f"cannot be used: {registration.error}", soft_wrap=True)
            continue
        console.print(f"[bold]{backend.name}[/bold] ({registration.source}): precisions "
                      f"{', '.join(backend.precisions)}; exports {backend.export_format}",
                      highlight=False)
        for option in backend.options:
            facts = [f"default {_text(option.default)}"]
            if list(option.searched) != [option.default]:
                facts.append(f"searched {', '.join(_text(v) for v in option.searched)}")
            facts += [f"only with {c}" for c in option.applies]
            facts += [f"{_text(v)} needs {c}" for v, c in option.needs.items()]
            if not option.build:
                facts.append("load-time")
            console.print(f"  [cyan]{option.name}[/cyan]: {option.domain()} "
                          f"({'; '.join(facts)})", highlight=False)
            if option.help:
                console.print(f"      {option.help}", highlight=False, style="dim")


def _text(value: object) -> str:
    from tuner.backends.base import plain

    value = plain(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _as_dict(registration: object) -> dict[str, object]:
    from tuner.backends.base import plain

    backend = registration.backend
    found: dict[str, object] = {"name": registration.name, "source": registration.source,
                                "target": registration.target, "error": registration.error}
    if backend is None:
        return found
    return found | {
        "precisions": list(backend.precisions), "export_format": backend.export_format,
        "versions": backend.versions(),
        "options": [{"name": o.name, "values": o.domain(), "default": plain(o.default),
                     "searched": [plain(v) for v in o.searched],
                     "applies": [str(c) for c in o.applies],
                     "needs": {str(plain(v)): str(c) for v, c in o.needs.items()},
                     "build": o.build, "help": o.help} for o in backend.options]}
