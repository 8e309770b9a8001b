"""``risk-supervisor tune``: trailing-stop parameter sets over recorded quotes (DESIGN §8).

:mod:`.decoded` reads a recording once, as replay judges its lines;
:mod:`.stop_kernel` runs the production stop's arithmetic for many sets at
once; :mod:`.outcomes` judges each trigger (giveback, whipsaw, saved);
:mod:`.runner` spreads the work over the cores; :mod:`.table` and
:mod:`.report_html` write the results; :mod:`.tuning` ties them together.
"""
