"""``python -m pipeline`` is ``xwatch``."""

from pipeline.cli import main

raise SystemExit(main())
