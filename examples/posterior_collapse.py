"""Posterior collapse in a VAE with an autoregressive decoder, and which KL controls prevent it.

Every arm trains the same model (same data, initialisation, batches, noise and optimiser);
only the KL weighting differs: constant beta = 1, monotonic and cyclical annealing
(kl_schedules schedules of the step), PI control of beta, free bits. Metrics are measured
on held-out data, in nats per sequence. The code lives in ``examples/collapse_experiment/``.

    python examples/posterior_collapse.py                      # topic data, all arms, seeds 0,1,2
    python examples/posterior_collapse.py --quick              # < 90 s on 2 cores (the tests)
    python examples/posterior_collapse.py --datasets digits    # binarised scikit-learn digits
    python examples/posterior_collapse.py --datasets topics,digits,toy --seeds 7,11,23 --out d
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)  # the package sits next to this script
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from collapse_experiment.cli import main  # noqa: E402  (after the path is set)

if __name__ == "__main__":
    main()
