"""The main demo in --quick mode: constant beta collapses, annealing keeps the latent in use.

Margins are generous, and nothing is asserted on ELBO ordering (see the README's evidence).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("matplotlib")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "posterior_collapse.py"


def load():
    spec = importlib.util.spec_from_file_location("posterior_collapse", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["posterior_collapse"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("collapse")
    result = load().main(["--quick", "--out", str(out)])
    return result, out


def test_quick_collapse_and_cure(quick_run):
    result, _ = quick_run
    runs = {r["schedule"]: r for r in result["runs"]}
    assert set(runs) == {"constant", "monotonic", "cyclical"}
    collapsed = runs["constant"]
    assert collapsed["kl"] < 0.1 and collapsed["mutual_info"] < 0.1
    assert collapsed["active_units"] <= 1
    for name in ("monotonic", "cyclical"):
        cured = runs[name]
        assert cured["kl"] > 0.3, (name, cured)
        assert cured["mutual_info"] > collapsed["mutual_info"] + 0.25, (name, cured)
        assert cured["active_units"] >= 2, (name, cured)


def test_quick_outputs_json_png_and_documented_shape(quick_run):
    _, out = quick_run
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["steps"] == 1500
    for run in saved["runs"]:
        assert {
            "dataset",
            "schedule",
            "seed",
            "recon",
            "kl",
            "elbo",
            "active_units",
            "mutual_info",
        } <= set(run)
        assert isinstance(run["active_units"], int) and isinstance(run["seed"], int)
        assert run["elbo"] == pytest.approx(-(run["recon"] + run["kl"]), rel=1e-5)
        assert np.isfinite([run["recon"], run["kl"], run["mutual_info"]]).all()
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_datasets_are_deterministic_with_known_structure():
    module = load()
    a = module.topic_markov_data(3)
    b = module.topic_markov_data(3)
    for x, y in zip(a[:4], b[:4], strict=True):
        np.testing.assert_array_equal(x, y)
    train, labels, test, _, vocab = a
    assert train.shape == (2000, 12) and test.shape == (500, 12) and vocab == 50
    assert set(np.unique(labels)) == set(range(8))
    assert train.min() >= 0 and train.max() < vocab
    toy = module.random_sequences_data(0)
    assert toy[0].shape == (10, 10) and toy[4] == 100


def test_schedules_of_the_arms():
    module = load()
    mono = module.make_schedule("monotonic", 2000)
    assert float(mono(250)) == pytest.approx(0.5) and float(mono(500)) == 1.0
    cyc = module.make_schedule("cyclical", 2000)
    assert float(cyc(125)) == pytest.approx(0.5) and float(cyc(500)) == 0.0


def test_bad_command_line(capsys):
    module = load()
    with pytest.raises(SystemExit):
        module.main(["--schedules", "warp"])
    assert "unknown" in capsys.readouterr().err
