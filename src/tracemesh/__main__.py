"""`python -m tracemesh` runs all-in-one."""

from tracemesh.cli.main import main

raise SystemExit(main())
