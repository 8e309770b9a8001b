"""The running build's version: shown by ``build_info``, the API and ``--version``."""

from __future__ import annotations

import importlib.metadata


def package_version() -> str:
    """The installed version of ``risk-supervisor``, or ``0+unknown`` when run from a tree.

    ``build_info`` carries it so a dashboard shows which build is running when
    behaviour changes after a deploy.
    """
    try:
        return importlib.metadata.version("risk-supervisor")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
