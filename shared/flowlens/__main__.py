"""`python -m flowlens` is the `flowlens` command."""

from flowlens.cli import main

raise SystemExit(main())
