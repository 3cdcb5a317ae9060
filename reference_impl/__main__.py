"""``python -m reference_impl ...`` -- see ``reference_impl.cli``."""

from .cli import main

raise SystemExit(main())
