"""The posterior-collapse experiment (examples/posterior_collapse.py) in --quick mode.

Constant beta collapses; PI control and free bits keep the latent in use. Margins are
generous, and nothing is asserted on the ordering of ELBOs, which is not a result: a latent
that encodes the topic saves about as much reconstruction as it costs in KL.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "posterior_collapse.py"
RUN_KEYS = {
    "dataset",
    "schedule",
    "seed",
    "steps_trained",
    "recon",
    "kl",
    "elbo",
    "nll_iw",
    "train_recon",
    "train_kl",
    "active_units",
    "mutual_info",
    "probe_accuracy",
    "kl_change_last_quarter",
    "elbo_change_last_quarter",
    "collapse_step",
    "collapse_warning",
    "curve",
}
MONITOR_CURVES = ("heldout_kl", "heldout_active_units", "heldout_mutual_info")


def load():
    """The entry-point script, as the command line runs it (it puts its package on the path)."""
    spec = importlib.util.spec_from_file_location("posterior_collapse_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(argv):
    """``main(argv)`` with stdout captured in a non-terminal stream: ``(result, output)``."""
    stream = io.StringIO()
    with contextlib.redirect_stdout(stream):
        result = load().main(argv)
    return result, stream.getvalue()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("collapse")
    result, output = run(["--quick", "--out", str(out)])
    return result, output, out


@pytest.mark.slow
def test_quick_constant_collapses_and_pi_and_free_bits_keep_the_latent(quick_run):
    result, _, _ = quick_run
    runs = {r["schedule"]: r for r in result["runs"]}
    assert set(runs) == {"constant", "pi", "free-bits"}
    chance = 1 / 8
    collapsed = runs["constant"]
    assert collapsed["kl"] < 0.1 and collapsed["mutual_info"] < 0.1, collapsed
    assert collapsed["active_units"] <= 1, collapsed
    assert collapsed["probe_accuracy"] < chance + 0.1, collapsed
    for name in ("pi", "free-bits"):
        cured = runs[name]
        assert cured["kl"] > 1.0, (name, cured)
        assert cured["mutual_info"] > 0.8, (name, cured)
        assert cured["active_units"] >= 2, (name, cured)
        assert cured["probe_accuracy"] > 2 * chance, (name, cured)


@pytest.mark.slow
def test_quick_no_memorisation(quick_run):
    result, _, _ = quick_run
    for r in result["runs"]:
        assert abs(r["recon"] - r["train_recon"]) < 0.05 * r["train_recon"], r
        assert r["recon"] < 12 * np.log(50), r  # far below a uniform model of the tokens


@pytest.mark.slow
def test_quick_json_layout_png_and_progress_log(quick_run):
    _, output, out = quick_run
    saved = json.loads((out / "results.json").read_text())
    assert set(saved) == {"config", "timing", "runs"}
    assert set(saved["timing"]) >= {"wall_seconds", "processes"}  # recorded, not judged
    config = saved["config"]
    assert config["seeds"] == [0] and list(config["datasets"]) == ["topics"]
    assert config["datasets"]["topics"]["steps"] == 1500
    assert set(config["arms"]) == set(config["schedules"])  # settings of the arms run only
    assert len(saved["runs"]) == 3
    for r in saved["runs"]:
        assert set(r) >= RUN_KEYS, RUN_KEYS - set(r)
        assert r["dataset"] == "topics" and r["seed"] == 0 and r["steps_trained"] == 1500
        assert isinstance(r["active_units"], int) and isinstance(r["seed"], int)
        assert r["elbo"] == pytest.approx(-(r["recon"] + r["kl"]), rel=1e-5)
        assert r["nll_iw"] <= -r["elbo"] + 0.05  # the IW bound is the tighter one
        assert 0 <= r["probe_accuracy"] <= 1
        assert r["curve"]["step"][-1] == 1500
        for name in MONITOR_CURVES:
            assert len(r["curve"][name]) == len(r["curve"]["step"])
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "\r" not in output  # not a terminal: plain lines a log file can show
    assert 5 <= sum("step" in line for line in output.splitlines()) <= 15


@pytest.mark.slow
def test_steps_are_exact_and_digits_run_end_to_end(tmp_path):
    """83 steps do not fill the last logging chunk (2 steps each): it must stop at 83."""
    options = ["--steps", "83", "--schedules", "constant,pi", "--seeds", "1"]
    result, _ = run(["--datasets", "digits", *options, "--out", str(tmp_path)])
    assert [r["steps_trained"] for r in result["runs"]] == [83, 83]
    assert all(r["curve"]["step"][-1] == 83 for r in result["runs"])
    assert {r["dataset"] for r in result["runs"]} == {"digits"}
    assert all(np.isfinite(r["nll_iw"]) and r["recon"] > 0 for r in result["runs"])
    assert (tmp_path / "digits.png").read_bytes()[:4] == b"\x89PNG"


def test_explicit_options_win_over_quick():
    cli = load().main.__module__
    parse, build = sys.modules[cli].parse_args, sys.modules[cli].build_config
    args = parse(["--quick", "--seeds", "3,5"])
    assert args.seeds == [3, 5]
    assert args.schedules == ["constant", "pi", "free-bits"]
    config = build(parse(["--quick", "--steps", "150", "--schedules", "constant,pi"]))
    assert config["datasets"]["topics"]["steps"] == 150
    assert set(config["arms"]) == {"constant", "pi"}
    assert build(parse(["--quick"]))["datasets"]["topics"]["steps"] == 1500
    assert build(parse([]))["seeds"] == [0, 1, 2]


@pytest.mark.slow
def test_data_generators_are_deterministic_with_known_structure():
    load()
    from collapse_experiment import data

    a, b = data.topic_markov_data(3), data.topic_markov_data(3)
    for x, y in zip(a[:4], b[:4], strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.train[:100], data.topic_markov_data(4).train[:100])
    assert a.train.shape == (100_000, 12) and a.test.shape == (2000, 12) and a.vocab == 50
    assert set(np.unique(a.train_labels)) == set(range(8)) and a.classes == 8
    assert a.train.min() >= 0 and a.train.max() < a.vocab
    nll, nll_given_topic = data.topic_markov_nll(3, a.test, a.test_labels)
    assert 0 < nll_given_topic < nll <= nll_given_topic + np.log(8) + 1e-9

    d, e = data.digits_data(0), data.digits_data(0)
    np.testing.assert_array_equal(d.train, e.train)
    assert d.train.shape == (1497, 64) and d.test.shape == (300, 64)
    assert set(np.unique(d.train)) == {0, 1} and d.vocab == 2 and d.classes == 10
    toy = data.random_sequences_data(0)
    assert toy.train.shape == (10, 10) and toy.vocab == 100


def test_schedules_of_the_arms():
    load()
    from collapse_experiment.train import make_schedule

    mono = make_schedule("monotonic", 2000, {"ramp_fraction": 0.25, "shape": "linear"})
    assert float(mono(250)) == pytest.approx(0.5) and float(mono(500)) == 1.0
    cyc = make_schedule("cyclical", 2000, {"cycles": 4, "ratio": 0.5, "shape": "linear"})
    assert float(cyc(125)) == pytest.approx(0.5) and float(cyc(500)) == 0.0


def test_bad_command_line(capsys):
    module = load()
    with pytest.raises(SystemExit):
        module.main(["--schedules", "warp"])
    assert "unknown" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.main(["--seeds", "1,x"])


@pytest.mark.slow
def test_quick_monitor_never_flags_pi_or_free_bits_and_sees_constant_collapsing(quick_run):
    """In 1500 steps constant beta only starts to collapse: its last held-out readings are
    below the thresholds (the monitor's unused streak is under way; it may not have reached
    the patience of 10 updates yet). PI control and free bits are never flagged."""
    result, output, _ = quick_run
    runs = {r["schedule"]: r for r in result["runs"]}
    constant = runs["constant"]["curve"]
    last = zip(constant["heldout_kl"][-5:], constant["heldout_active_units"][-5:], strict=True)
    for kl, au in last:
        assert kl < 0.05 and au == 0, (constant["heldout_kl"], constant["heldout_active_units"])
    for name in ("pi", "free-bits"):
        assert runs[name]["collapse_step"] is None and runs[name]["collapse_warning"] is None
        assert min(runs[name]["curve"]["heldout_kl"][10:]) > 1.0
    table = {
        line.split(" | ")[1]: line for line in output.splitlines() if line.startswith("| topics |")
    }
    for name, run in runs.items():
        step = run["collapse_step"]
        assert table[name].endswith("| 0/1 |" if step is None else f"| 1/1 ({step}) |"), table
        if step is not None:  # the warning is printed on a line of its own
            assert f"{name}: posterior collapse at step {step}" in output


@pytest.mark.slow
def test_quick_collapse_step_agrees_with_the_recorded_monitor_curves(quick_run):
    """Independent check of the monitor's verdict from the curves it reported: the flag is
    the first point ending 10 logged points in a row with held-out KL < 0.05 and no active
    unit (the default CollapseConfig); runs never flagged have no such stretch."""
    result, _, _ = quick_run
    for r in result["runs"]:
        curve = r["curve"]
        unused = [
            kl < 0.05 and au == 0
            for kl, au in zip(curve["heldout_kl"], curve["heldout_active_units"], strict=True)
        ]
        expected, run = None, 0
        for step, is_unused in zip(curve["step"], unused, strict=True):
            run = run + 1 if is_unused else 0
            if run == 10:
                expected = step
                break
        assert r["collapse_step"] == expected, (r["schedule"], r["collapse_step"], expected)


@pytest.mark.slow
def test_monitor_figure_draws_the_flagged_run(quick_run, tmp_path):
    _, _, out = quick_run
    spec = importlib.util.spec_from_file_location(
        "monitor_figure", SCRIPT.parent / "collapse_experiment" / "monitor_figure.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    png = tmp_path / "figure.png"
    with contextlib.redirect_stdout(io.StringIO()):
        module.main([str(out / "results.json"), "--schedule", "constant", "--out", str(png)])
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):
        module.main([str(out / "results.json"), "--schedule", "monotonic"])  # not in --quick
