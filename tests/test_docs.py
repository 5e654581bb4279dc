"""The README stays short and every relative link of the README and the docs site leads to a file."""

import importlib.util
import pathlib
import re

import pytest

pytest.importorskip("mkdocs")

ROOT = pathlib.Path(__file__).resolve().parents[1]
# [text](target) and ![alt](target); the target ends at whitespace (a title) or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?[^)]*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def _relative_links(markdown):
    """The link targets of a Markdown text outside code, without their #anchor; web and mail links left out."""
    text = CODE_SPAN.sub("", FENCE.sub("", markdown))
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        yield target.split("#", 1)[0]


def _pages():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_readme_is_at_most_250_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move detail into docs/ (at most 250)"


@pytest.mark.parametrize("page", _pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file(page):
    missing = [target for target in _relative_links(page.read_text(encoding="utf-8"))
               if not (page.parent / target).resolve().is_file()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_the_link_check_sees_links_and_skips_code_and_web_addresses():
    text = ("[a](docs/a.md#part) ![b](images/b.png) [web](https://example.org) [here](#top)\n"
            "`[c](c.md)`\n```\n[d](d.md)\n```\n")
    assert list(_relative_links(text)) == ["docs/a.md", "images/b.png"]


def test_the_api_page_lists_every_top_level_name():
    # The registry imports nothing from privgan: read without importing the package (and TensorFlow).
    spec = importlib.util.spec_from_file_location("privgan_registry", ROOT / "privgan" / "registry.py")
    registry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(registry)
    api = registry.public_names()
    page = (ROOT / "docs" / "api" / "privgan.md").read_text(encoding="utf-8")
    assert [name for name, module in api.items() if f"[`privgan.{name}`][{module}.{name}]" not in page] == []


def _results_script():
    spec = importlib.util.spec_from_file_location("docs_results", ROOT / "docs" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_script_copies_a_report_and_its_figures_onto_the_page(tmp_path):
    results = _results_script()
    pages = tmp_path / "results"
    pages.mkdir()
    (pages / "dpsgd_mnist.md").write_text("# old numbers\n", encoding="utf-8")
    run = tmp_path / "runs" / "dpsgd_mnist"
    run.mkdir(parents=True)
    (run / "report.md").write_text("# DP-SGD\n\n| key | value |\n\n![plot.png](plot.png)\n\nCommand: `x`\n",
                                   encoding="utf-8")
    (run / "plot.png").write_bytes(b"png")
    page = results.refresh(run, pages=pages)
    assert page == pages / "dpsgd_mnist.md"
    assert page.read_text(encoding="utf-8") == (
        "# DP-SGD\n\n| key | value |\n\n![plot.png](dpsgd_mnist/plot.png)\n\nCommand: `x`\n"
    )
    assert (pages / "dpsgd_mnist" / "plot.png").read_bytes() == b"png"


def test_results_script_refuses_an_unknown_experiment_or_a_missing_figure_and_writes_nothing(tmp_path):
    results = _results_script()
    pages = tmp_path / "results"
    pages.mkdir()
    (pages / "dpsgd_mnist.md").write_text("# old numbers\n", encoding="utf-8")
    run = tmp_path / "elsewhere"
    run.mkdir()
    (run / "report.md").write_text("![plot.png](plot.png)\n", encoding="utf-8")
    with pytest.raises(ValueError, match="experiment must be one of dpsgd_mnist"):
        results.refresh(run, pages=pages)
    with pytest.raises(ValueError, match="embeds 'plot.png'"):
        results.refresh(run, experiment="dpsgd_mnist", pages=pages)
    assert (pages / "dpsgd_mnist.md").read_text(encoding="utf-8") == "# old numbers\n"
    assert sorted(path.name for path in pages.iterdir()) == ["dpsgd_mnist.md"]
