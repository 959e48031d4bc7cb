"""``python -m hookbird``: the same as the ``hookbird`` command."""

from hookbird.cli import main

raise SystemExit(main())
