"""``python -m reference_impl certify``: certify the reference on this machine.

:mod:`.command` is the command (arguments, the process pool, exit codes);
:mod:`.tasks` the rows and what each computes, as thin layers over the
engine; :mod:`.modes` which modes and devices a row runs in; :mod:`.report`
the progress display and the certificate in text, Markdown and JSON;
:mod:`.baseline` what moved since an earlier certificate.

The top of the import graph beside the command line: may import everything
below it (the oracle's settings, the engine, the strategies, the frameworks,
the golden fixtures, the reference).
"""

from __future__ import annotations

from .command import (
    BACKEND_CHOICES,
    SECTIONS,
    Certificate,
    CertRow,
    Progress,
    add_arguments,
    available_workers,
    certify_run,
    compare_baseline,
    main,
    run,
)

__all__ = ["main", "run", "CertRow", "Certificate", "Progress", "SECTIONS", "BACKEND_CHOICES", "compare_baseline",
           "add_arguments", "certify_run", "available_workers"]
