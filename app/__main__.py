"""``python -m app ...``: the service's command line (see ``app.cli``)."""

from app.cli import main

raise SystemExit(main())
