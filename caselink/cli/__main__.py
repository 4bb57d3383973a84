"""``python -m caselink.cli ...``: the same as the ``caselink`` command."""

from caselink.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
