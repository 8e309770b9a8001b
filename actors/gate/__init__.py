"""The pre-trade gate's pure logic (DESIGN §4): limits, order controls, margin, verdicts.

Two halves, each owned by one actor so that no decision races another:

* the **assessment** (:mod:`actors.gate.assessment`), on the portfolio actor:
  the portfolio limits, the stateless order controls and the collar, the
  cooldown and every freshness rule — what the book and the market say;
* the **admission** (:mod:`actors.gate.admission`), on the breaker actor: the
  stateful order controls (rate, duplicates), the margin what-if, the
  breaker's say and its half-open permit — what the order's own history says.

Each limit and each order control is one small class in its own module
(``limits/`` and ``controls/``), listed once in a registry.
"""
