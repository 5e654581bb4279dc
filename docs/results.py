"""Copies an experiment's `report.md` (and the figures it shows) onto its page of the docs' Results section.

    python docs/results.py runs/dpsgd_mnist                          # -> docs/results/dpsgd_mnist.md
    python docs/results.py runs/all --experiment=tabular_peers       # a folder named otherwise

The page is replaced by the report as written by the run (`experiments.common.reporting.write_experiment`), so its
numbers, command, date and machine come from the run, not from prose. Figures the report embeds are copied to
`docs/results/<experiment>/` and the links rewritten. Nothing is written unless the report and every figure
it names are readable; each file is written to a temporary name and renamed into place.
"""

import argparse
import os
import pathlib
import re
import shutil
import sys
import tempfile

PAGES = pathlib.Path(__file__).resolve().parent / "results"
# Pages kept by hand: their runs write no report.md.
HAND_WRITTEN = ("index", "demo", "dp_step")
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def known_experiments(pages):
    """The experiments whose pages a report may replace: the pages of `pages` but the hand-written ones."""
    return sorted(path.stem for path in pages.glob("*.md") if path.stem not in HAND_WRITTEN)


def _atomic_copy(source, target):
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def _atomic_write(target, text):
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def refresh(output_dir, *, experiment=None, pages=PAGES):
    """Replaces `pages/<experiment>.md` with `output_dir/report.md` and copies the figures it embeds.

    Args:
        output_dir: an experiment's `--output_dir`, holding `report.md` and its figures.
        experiment: the page's name (default: the folder's name); one of `known_experiments(pages)`.
        pages: the Results folder of the docs.

    Returns:
        The path of the page written.

    Raises:
        ValueError: the experiment has no page, the folder has no report.md, or a figure it embeds is missing
            or not a relative path inside the folder.
    """
    output_dir, pages = pathlib.Path(output_dir), pathlib.Path(pages)
    experiment = experiment or output_dir.resolve().name
    allowed = known_experiments(pages)
    if experiment not in allowed:
        raise ValueError(f"experiment must be one of {', '.join(allowed)}; got {experiment!r} "
                         "(pass --experiment when the output folder is named otherwise)")
    report = output_dir / "report.md"
    if not report.is_file():
        raise ValueError(f"output_dir {str(output_dir)!r} holds no report.md: run the experiment with "
                         "--output_dir pointing there first")
    text = report.read_text(encoding="utf-8")
    figures = {}
    for target in {match.group(2) for match in IMAGE.finditer(text)}:
        source = (output_dir / target).resolve()
        if "://" in target or output_dir.resolve() not in source.parents or not source.is_file():
            raise ValueError(f"report.md in {str(output_dir)!r} embeds {target!r}, which is not a file in that folder")
        figures[target] = source
    # Figures first, then the page that links them; figures of an earlier report that this one lacks go.
    folder = pages / experiment
    for source in figures.values():
        _atomic_copy(source, folder / source.name)
    if folder.is_dir():
        for stale in folder.iterdir():
            if stale.name not in {source.name for source in figures.values()}:
                stale.unlink()
    text = IMAGE.sub(lambda m: f"![{m.group(1)}]({experiment}/{figures[m.group(2)].name})", text)
    page = pages / f"{experiment}.md"
    _atomic_write(page, text)
    return page


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="the experiment's --output_dir (holding report.md)")
    parser.add_argument("--experiment", help="the page's name when it differs from the folder's")
    args = parser.parse_args(argv)
    try:
        page = refresh(args.output_dir, experiment=args.experiment)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(f"wrote {page}")


if __name__ == "__main__":
    sys.exit(main())
