"""The ``caselink`` command line, on top of every other layer (it opens the service, serves the API).

Its own package so ``caselink/`` itself holds only what every layer imports (``config``, ``types``,
``errors``): importing the settings never pulls in Typer, rich or the commands. ``app`` is the
Typer application (the ``caselink`` entry point in pyproject.toml); ``main()`` runs it;
``python -m caselink.cli`` does the same.
"""

from caselink.cli.commands import app


def main() -> None:
    app()


__all__ = ["app", "main"]
