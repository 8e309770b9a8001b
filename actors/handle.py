"""How actors address each other: a recipient, and a handle that survives restarts.

An actor keeps references to the actors it tells (its portfolio, its
breaker, its subscriber). Typed as :class:`Recipient` — anything with
``tell`` — so a plain ``ActorRef``, a :class:`Handle` or a test probe fit.

pykka drops a dead actor's queued mail and its ``ActorRef`` stays dead, so a
restart is only as good as the re-wiring around it. Every long-lived actor is
reached through a :class:`Handle` that always points at the current
incarnation; the supervisor swaps the reference and nobody else notices.
"""

from __future__ import annotations

from typing import Any, Protocol

import pykka


class Recipient(Protocol):
    def tell(self, message: Any) -> None: ...


class Handle:
    """Tell/ask the current incarnation of an actor; swapped on restart."""

    __slots__ = ("kind", "name", "ref")

    def __init__(self, kind: str, name: str, ref: pykka.ActorRef[Any] | None = None) -> None:
        self.kind = kind
        self.name = name
        self.ref: pykka.ActorRef[Any] = ref  # type: ignore[assignment]  # set before use

    def tell(self, message: Any) -> None:
        # dead and being restarted: the successor resyncs its state
        # (try/except, not contextlib.suppress: every quote takes two of these hops)
        try:  # noqa: SIM105
            self.ref.tell(message)
        except pykka.ActorDeadError:
            pass

    def call_here(self, message: Any) -> tuple[bool, Any]:
        """``_Mailbox.call_here`` of the current incarnation; (False, None) if it cannot."""
        inbox = getattr(self.ref, "actor_inbox", None)
        call = getattr(inbox, "call_here", None)
        if call is None:
            return False, None
        answer: tuple[bool, Any] = call(message)
        return answer

    def ask(self, message: Any, timeout: float | None = 5.0) -> Any:
        return self.ref.ask(message, timeout=timeout)

    def is_alive(self) -> bool:
        return bool(self.ref.is_alive())

    def stop(self) -> None:
        if self.ref.is_alive():
            self.ref.stop()
