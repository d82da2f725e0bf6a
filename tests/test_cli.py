"""The command line: values, plot (PNG and CSV), and one-line errors for bad options."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from kl_schedules.__main__ import build_parser, main


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


@pytest.mark.slow
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
def test_bad_options_one_line_error_no_traceback(args, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:  # in this process: an exception other than a parser exit would fail the test
        status = main(args)
    except SystemExit as exit:  # argparse's own errors (bad syntax)
        status = exit.code
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert needle in lines[0]


def test_a_bad_option_exits_2_with_one_line_and_no_traceback_as_a_command():
    result = run_cli("values", "--kind", "cyclical", "--ratio", "1.5")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "kl-schedules: error: --ratio 1.5: ratio must be a finite number in (0.0, 1.0], got 1.5"
    ]


def error_line(args, capsys):
    try:
        status = main(args)
    except SystemExit as exit:
        status = exit.code
    assert status == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


def test_a_value_a_float_cannot_hold_is_reported_as_typed(capsys):
    for text in ("1e-400", "-1e-400", "1e400"):
        line = error_line(["values", "--kind", "cyclical", f"--ratio={text}"], capsys)
        assert f"--ratio: cannot read '{text}'" in line and "got 0.0" not in line
    assert "'1e400' is too large" in line


def test_the_shape_error_offers_only_what_the_command_line_takes(capsys):
    for text in ("tanh", "5"):
        line = error_line(["values", "--shape", text], capsys)
        assert "one of ['linear', 'cosine', 'logistic']" in line and "callable" not in line
    assert "callable" not in build_parser().format_help()
    plot_help = " ".join(help_text("plot", capsys).split())
    assert "callable" not in plot_help and "ramp shape: linear, cosine, logistic" in plot_help


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--kind", "cyclical", "--hold-start", "0.6"], "--hold-start 0.6"),
        (["--kind", "cyclical", "--period", "0.5"], "--period 0.5"),
        (["--kind", "cyclical", "--num-cycles", "2.5"], "--num-cycles 2.5"),
        (["--kind", "monotonic", "--delay", "-1"], "--delay -1"),
        (["--kind", "monotonic", "--total-steps", "0,10"], "--total-steps 0"),
        (["--kind", "monotonic", "--shape", "logistic", "--steepness", "0"], "--steepness 0"),
        (["--kind", "annealer", "--total-steps", "0"], "--total-steps 0"),
        (["--kind", "constant", "--value", "nan"], "--value nan"),
    ],
)
def test_an_error_is_mapped_to_the_option_that_caused_it(args, flag, capsys):
    line = error_line(["values", *args], capsys)
    assert line.startswith(f"kl-schedules: error: {flag}: "), line


def test_an_empty_title_is_honoured(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    titles = []
    monkeypatch.setattr(
        matplotlib.figure.Figure,
        "savefig",
        lambda figure, *a, **k: titles.append(figure.axes[0].get_title()),
    )
    out = str(tmp_path / "x.png")
    for title in ([], ["--title", ""], ["--title", "warm-up"]):
        assert main(["plot", "--steps", "5", "--out", out, *title]) == 0
    assert titles == ["monotonic schedule", "", "warm-up"]


def help_text(command, capsys):
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0
    return capsys.readouterr().out


def test_every_setting_of_every_kind_is_an_option(capsys):
    import dataclasses

    from kl_schedules import ConstantSchedule, CyclicalSchedule, MonotonicSchedule

    text = help_text("values", capsys)
    for cls in (ConstantSchedule, MonotonicSchedule, CyclicalSchedule):
        for field in dataclasses.fields(cls):
            assert "--" + field.name.replace("_", "-") in text
    for name in ("--baseline", "--cyclical", "--disable", "--toggle"):
        assert name in text


def test_the_annealer_switches(capsys):
    assert main(["values", "--kind", "annealer", "--total-steps", "2", "--steps", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["0,0", "1,0.5", "2,1"]
    assert main(["values", "--kind", "annealer", "--disable", "--steps", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["0,1", "1,1"]


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


@pytest.mark.slow
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
