"""The daemon as the API sees it: :class:`~supervisor.core.facade.DaemonPort`, and one more need.

The API pages the journal forward by its ``seq`` (``GET /v1/journal?since=<seq>``),
a cursor that never skips or repeats a row, which event times cannot give
(many rows share one time). ``DaemonPort.journal`` filters by time only, so
the API asks for ``after_seq`` as well; this is the one thing the API needs
beyond ``facade.py`` (reported to the core). Every route reaches the daemon
through :func:`port_of`, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Protocol, cast

from fastapi import Depends, Request

from supervisor.core.facade import DaemonPort, JournalEntry

__all__ = ["ApiPort", "Port", "port_of"]


class ApiPort(DaemonPort, Protocol):
    """A :class:`DaemonPort` whose journal also pages by seq."""

    def journal(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        kinds: Sequence[str] = (),
        position_id: str | None = None,
        limit: int = 1000,
        after_seq: int | None = None,
    ) -> Sequence[JournalEntry]:
        """Journal rows oldest first; ``after_seq`` keeps rows with a greater seq (exclusive)."""
        ...


def port_of(request: Request) -> ApiPort:
    """The daemon behind this app (set once by ``create_app``)."""
    return cast(ApiPort, request.app.state.daemon)


Port = Annotated[ApiPort, Depends(port_of)]
"""A route parameter of this type receives the daemon."""
