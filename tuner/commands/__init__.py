"""Typer command groups of the ``podium`` CLI, one module per group."""
