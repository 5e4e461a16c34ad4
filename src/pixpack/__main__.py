"""``python -m pixpack``: the same as the ``pixpack`` command."""

from pixpack.cli.main import main

raise SystemExit(main())
