"""``risk-supervisor tune``: trailing-stop parameter sets over recorded quotes (DESIGN §8).

:mod:`.decoded` reads a recording once, as replay judges its lines;
:mod:`.stop_kernel` runs the production stop's arithmetic for many sets at
once over plain positions; :mod:`.strategy_model` replays the lines about
strategies and their legs (:mod:`.routed`) per set through the production
``StrategyStop`` and ``TrailingStop``; :mod:`.outcomes` judges each trigger
(giveback, whipsaw, saved); :mod:`.runner` spreads the work over the cores; :mod:`.table` and
:mod:`.report_html` write the results; :mod:`.tuning` ties them together.
"""
