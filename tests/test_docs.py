"""The documentation site builds from the docstrings and pages, warnings as errors; every
internal link and reference in it resolves; it needs no network to show (the maths is
MathML, rendered at build time)."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDES = (
    "getting_started",
    "flax_linen",
    "flax_nnx",
    "pytorch",
    "lightning",
    "accelerate",
    "keras",
    "numpyro_pyro",
    "choosing",
    "collapse",
    "control",
)


class Links(HTMLParser):
    """The ids a page defines, and the links and resources it points at."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.targets: list[tuple[str, str]] = []  # (tag, url)
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key) and (key == "id" or tag == "a"):
                self.ids.add(str(values[key]))
        for key in ("href", "src"):
            if values.get(key):
                self.targets.append((tag, str(values[key])))
        if tag == "script" and values.get("src"):
            self.scripts.append(str(values["src"]))


def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def broken_links(site: Path) -> list[str]:
    """Every internal link, image and script of the built site that does not resolve."""
    pages = {path.resolve(): parse(path) for path in site.rglob("*.html")}
    broken = []
    for page, links in pages.items():
        for tag, url in links.targets:
            parts = urlsplit(url)
            if parts.scheme or url.startswith("//"):  # external: not checked (no network)
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: <{tag}> {url} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: <{tag}> {url} (no such anchor)")
    return broken


def test_the_link_checker_finds_broken_links(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.html").write_text(
        '<p id="top"><a href="sub/b.html#here">ok</a> <a href="#top">ok</a>'
        '<a href="https://example.org/x">external</a> <img src="missing.png">'
        '<a href="sub/b.html#nowhere">bad anchor</a> <a href="c.html">bad file</a></p>'
    )
    (tmp_path / "sub" / "b.html").write_text('<h1 id="here">b</h1><a href="../a.html#top">ok</a>')
    assert sorted(broken_links(tmp_path)) == [
        "a.html: <a> c.html (no such file)",
        "a.html: <a> sub/b.html#nowhere (no such anchor)",
        "a.html: <img> missing.png (no such file)",
    ]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    pytest.importorskip("furo")
    pytest.importorskip("latex2mathml")
    out = tmp_path_factory.mktemp("html")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return out


@pytest.mark.slow
def test_sphinx_builds_without_warnings(site):
    api = (site / "api.html").read_text()
    for name in ("cyclical_schedule", "PIController", "KLAnnealingCallback", "kl_balance"):
        assert name in api
    assert "<math" in api  # the docstrings' maths, rendered
    assert (site / "pitfalls.html").read_text().count("torch.compile") >= 1
    for guide in GUIDES:
        assert (site / "guide" / f"{guide}.html").exists(), guide
    assert (site / "changelog.html").exists()
    assert (site / "searchindex.js").exists()  # the theme's search works offline


@pytest.mark.slow
def test_every_internal_link_resolves(site):
    assert broken_links(site) == []


@pytest.mark.slow
def test_the_site_needs_no_network(site):
    for page in site.rglob("*.html"):
        links = parse(page)
        remote = [src for src in links.scripts if urlsplit(src).scheme or src.startswith("//")]
        assert remote == [], f"{page.name} loads scripts from the network: {remote}"
        assert not [src for src in links.scripts if "mathjax" in src.lower()], page.name
        text = page.read_text(encoding="utf-8")
        assert "\\(" not in text and "\\[" not in text, f"{page.name}: raw LaTeX delimiters"
    background = (site / "background.html").read_text()
    assert background.count("<math") >= 10  # the formulas, as MathML


@pytest.mark.slow
def test_evidence_tables_are_generated_from_the_results(site):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import _evidence
    finally:
        sys.path.pop(0)
    page = (site / "guide" / "choosing.html").read_text()
    topics = _evidence.load("topics")
    runs = [run for run in topics["runs"] if run["schedule"] == "pi"]
    cell = _evidence.mean_std([run["probe_accuracy"] for run in runs], 2)
    assert cell.replace(" ", "\u00a0") in page or cell in page
    assert "cyclical (M=4, R=0.5, cosine)" in page
    benchmarks = (site / "benchmarks.html").read_text()
    assert "train_step_overhead/cyclical" in benchmarks


def _docs_module(name: str):
    sys.path.insert(0, str(ROOT / "docs"))
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        return __import__(name)
    finally:
        del sys.path[:2]


def test_display_maths_is_split_and_aligned_as_sphinx_does():
    pytest.importorskip("sphinx")
    mathml = _docs_module("mathml")
    text = "p &= 1 \\\\\nq &= 2\n\nr = 3"
    assert mathml._equations(text, nowrap=False) == [
        "\\begin{split}p &= 1 \\\\\nq &= 2\\end{split}",
        "r = 3",
    ]
    assert mathml._equations(text, nowrap=True) == [text]
    pytest.importorskip("latex2mathml")
    rendered = mathml._convert(mathml._equations(text, nowrap=False)[0], "block")
    assert rendered.count("<mtr") == 2 and "&amp;" not in rendered and "<mi>&" not in rendered
    with pytest.raises(Exception, match="cannot render"):
        mathml._convert("\\frac{1}{", "inline")


def _run(dataset, schedule, seed, **values):
    base = {"kl": 1.0, "mutual_info": 1.0, "active_units": 4, "probe_accuracy": 0.5}
    base |= {"train_recon": 30.0, "recon": 31.0, "elbo": -32.0, "nll_iw": 31.5}
    base |= {"kl_change_last_quarter": 0.0, "steps_trained": 100, "train_seconds_all_arms": 9.6}
    return {"dataset": dataset, "schedule": schedule, "seed": seed, **base, **values}


def test_evidence_tables_compute_mean_and_sample_std_per_arm():
    evidence = _docs_module("_evidence")
    config = {
        "arms": {"constant": {"beta": 1.0}, "pi": {"target": 2.0, "k_p": 0.01, "k_i": 0.001}},
        "datasets": {"topics": {"data": {"topics": 4}, "model": {"latent": 8}}},
    }
    runs = [
        _run("topics", "constant", 0, kl=0.0),
        _run("topics", "constant", 1, kl=0.2),
        _run("topics", "pi", 0, kl=2.0, probe_accuracy=0.75),
        _run("topics", "pi", 1, kl=3.0, probe_accuracy=0.85),
    ]
    table = evidence.results_table({"config": config, "runs": runs}, "topics", part="use")
    lines = table.splitlines()
    assert lines[0] == "| arm | KL | MI | AU (of 8) | probe acc. (chance 0.25) |"
    # sample standard deviation: 0.1 * sqrt(2) = 0.14; 0.5 * sqrt(2) = 0.71
    assert lines[2] == "| constant beta = 1 | 0.10 ± 0.14 | 1.00 ± 0.00 | 4.0 ± 0.0 | 0.50 ± 0.00 |"
    assert lines[3].startswith("| PI control, target 2 nats | 2.50 ± 0.71 |")
    assert lines[3].endswith("| 0.80 ± 0.07 |")
    # once the runs record the collapse monitor's verdict, the table shows it
    for run, step in zip(runs, (120, 340, None, None), strict=True):
        run["collapse_step"] = step
    table = evidence.results_table({"config": config, "runs": runs}, "topics", part="use")
    assert table.splitlines()[2].endswith("| 2 of 2, steps 120-340 |")
    assert table.splitlines()[3].endswith("| never (0 of 2) |")
    facts = evidence.run_facts({"config": config, "runs": runs}, "topics")
    assert "Seeds 0, 1; 100 steps" in facts and "took 10 s" in facts
