"""The command line: values, plot (PNG and CSV), and one-line errors for bad options."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from kl_schedules.__main__ import main


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kl_schedules", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_values_prints_csv(capsys):
    assert main(["values", "--kind", "cyclical", "--period", "4", "--steps", "6"]) == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert rows[0] == ["step", "cyclical"]
    assert [float(r[1]) for r in rows[1:]] == [0, 0.5, 1, 1, 0, 0.5]


def test_steepness_with_a_logistic_line_and_csv_to_stdout(capsys):
    args = ["--shape", "linear,logistic", "--steepness", "5", "--steps", "3"]
    assert main(["plot", "--csv", "--out", "-", *args]) == 0
    from_plot = capsys.readouterr().out
    assert main(["values", *args]) == 0
    assert from_plot == capsys.readouterr().out
    assert from_plot.splitlines()[0] == "step,linear,logistic"


def test_values_annealer_with_toggle(capsys):
    args = [
        "values",
        "--kind",
        "annealer",
        "--total-steps",
        "3",
        "--cyclical",
        "--toggle",
        "4:off",
        "--steps",
        "8",
    ]
    assert main(args) == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))[1:]
    # cyclical: 0, 1/3, 2/3, 0; off before step 4: 1/3, 2/3, 1, 1 (saturated)
    expected = [0, 1 / 3, 2 / 3, 0, 1 / 3, 2 / 3, 1, 1]
    assert [float(r[1]) for r in rows] == pytest.approx(expected, abs=1e-8)


def test_plot_writes_png_and_csv(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "shapes.png"
    args = [
        "plot",
        "--kind",
        "monotonic",
        "--shape",
        "linear,cosine,logistic",
        "--steps",
        "50",
        "--out",
        str(png),
    ]
    assert main(args) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "shapes.csv"
    assert main([*args[:-1], str(out), "--csv"]) == 0
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["step", "linear", "cosine", "logistic"] and len(rows) == 51


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["values", "--shape", "tanh"], "--shape"),
        (["values", "--kind", "cyclical", "--ratio", "1.5"], "--ratio"),
        (["values", "--kind", "cyclical", "--period", "0"], "--period"),
        (["values", "--kind", "monotonic", "--total-steps", "0"], "--total-steps"),
        (["values", "--steps", "0"], "--steps"),
        (["values", "--steps", "ten"], "--steps"),
        (["values", "--kind", "annealer", "--baseline", "2"], "--baseline"),
        (["values", "--kind", "annealer", "--toggle", "3:maybe"], "--toggle"),
        (["values", "--kind", "spiral"], "--kind"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
        (["plot", "--out", "/nonexistent-dir/x.csv", "--csv"], "no such directory"),
        (["plot", "--out", "/nonexistent-dir/x.png"], "no such directory"),
        (["plot", "--out", "x.jpg2"], "cannot write 'jpg2'"),
        (["plot", "--ratio", "7"], "--ratio does not apply to --kind monotonic"),
        (["values", "--kind", "constant", "--shape", "cosine"], "--shape does not apply"),
        (["values", "--kind", "cyclical", "--cyclical"], "--cyclical does not apply"),
        (["values", "--kind", "cyclical", "--hold-start", "0.6"], "--hold-start"),
        (["values", "--kind", "cyclical", "--num-cycles", "two"], "--num-cycles"),
        (["values", "--kind", "cyclical", "--ratio", "0.1,0.2", "--shape", "a,b,c"], "values"),
        (["values", "--steepness", "5"], "--steepness applies only to --shape logistic"),
        (["values", "--kind", "cyclical", "--shape", "cosine", "--steepness", "5"], "logistic"),
        (["plot", "--out", "-"], "standard output takes --csv only"),
    ],
)
def test_bad_options_one_line_error_no_traceback(args, needle, tmp_path):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]


def test_help_documents_every_option():
    result = run_cli("plot", "--help")
    assert result.returncode == 0
    for option in (
        "--kind",
        "--shape",
        "--period",
        "--ratio",
        "--baseline",
        "--steps",
        "--csv",
        "--toggle",
        "--out",
    ):
        assert option in result.stdout


def test_new_cyclical_options_one_line_each(capsys):
    args = ["values", "--kind", "cyclical", "--period", "4", "--steps", "12"]
    assert main([*args, "--hold-start", "0,0.25", "--num-cycles", "none,2"]) == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert rows[0] == ["step", "hold_start=0.0, num_cycles=None", "hold_start=0.25, num_cycles=2"]
    first = [float(r[1]) for r in rows[1:]]
    second = [float(r[2]) for r in rows[1:]]
    assert first == [0, 0.5, 1, 1] * 3
    assert second == [0, 0, 0.5, 1, 0, 0, 0.5, 1, 1, 1, 1, 1]


def test_version():
    from kl_schedules import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"kl-schedules {__version__}"


def test_a_closed_pipe_ends_quietly():
    result = subprocess.run(
        f"{sys.executable} -m kl_schedules values --steps 200000 | head -n 2",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.splitlines() == ["step,monotonic", "0,0"]
    assert result.stderr == ""
