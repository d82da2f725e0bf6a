"""The posterior-collapse experiment behind ``examples/posterior_collapse.py``.

One job per module: ``data`` (data sets), ``model`` (the VAE), ``train`` (all arms of a seed
in one jitted scan), ``metrics`` (held-out and training-set estimators), ``report`` (table
and figures), ``cli`` (options, configuration, outputs).
"""
