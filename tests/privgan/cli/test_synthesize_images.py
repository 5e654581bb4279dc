"""End-to-end runs of `privgan-synthesize --input=...` on tiny image sets, started together.

A folder of 16x16 PNGs (3 classes), a folder of mixed sizes (resized with --image_size, or refused
without it), .npz inputs (uint8 and declared float ranges), and bad inputs that must stop with one error
line before anything is written.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

# One worker runs this module, so that its module-scoped fixture (console runs) runs once, not once per worker.
pytestmark = pytest.mark.xdist_group("images_cli")

REPO = pathlib.Path(__file__).resolve().parents[3]
ENTRY_POINT = [sys.executable, "-c", "import privgan_commands; privgan_commands.synthesize()"]
MODULE = [sys.executable, "-m", "privgan.cli.synthesize"]
CLASSES = ("bar", "disc", "square")
PER_CLASS = 10
TINY = ["--release_steps=5", "--num_features=64", "--seed=0", "--delta=1e-3"]


def _shape_image(label, size, rng):
    height, width = size
    rows, columns = np.mgrid[:height, :width]
    image = np.zeros(size)
    if label == 0:
        image[:, width // 2 - 2 : width // 2 + 2] = 1
    elif label == 1:
        image[(rows - height / 2) ** 2 + (columns - width / 2) ** 2 < (min(size) / 3) ** 2] = 1
    else:
        image[height // 4 : -height // 4, width // 4 : -width // 4] = 1
    return np.clip(image * 220 + rng.integers(0, 35, size), 0, 255).astype(np.uint8)


def _write_folder(root, *, sizes=((16, 16),), empty=None, rgb=False):
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        if name == empty:
            continue
        for index in range(PER_CLASS):
            image = _shape_image(label, sizes[index % len(sizes)], rng)
            if rgb:
                image = np.stack([image, image // 2, 255 - image], axis=-1)
            Image.fromarray(image).save(root / name / f"{index}.png")
    return root


def _write_inputs(folder):
    _write_folder(folder / "pngs")
    _write_folder(folder / "mixed", sizes=((16, 16), (20, 24)), rgb=True)
    _write_folder(folder / "empty", empty="disc")
    rng = np.random.default_rng(1)
    y = np.arange(24) % 2
    float_x = np.stack([_shape_image(label, (12, 20), rng) / 255.0 for label in y]).astype(np.float32)
    np.savez(folder / "floats.npz", x=float_x, y=y)
    np.savez(folder / "bytes.npz", x=(float_x * 255).astype(np.uint8), y=y, classes=np.array(["left", "right"]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The command as a user runs it (each start imports TensorFlow, so few of them): a folder of PNGs and two bad
    inputs through the console entry point (which filters TensorFlow's start-up lines)."""
    folder = tmp_path_factory.mktemp("images")
    _write_inputs(folder)
    out = folder / "out"
    commands = {
        "folder": (ENTRY_POINT, [f"--input={folder / 'pngs'}", "--epsilon=5", f"--fidelity_report={out / 'private'}",
                                 f"--output={out / 'folder' / 'synthetic.npz'}"]),
        "mixed_sizes": (ENTRY_POINT, [f"--input={folder / 'mixed'}", "--epsilon=5",
                                 f"--output={out / 'mixed_sizes' / 'synthetic.npz'}"]),
        "table_flag": (ENTRY_POINT, [f"--input={folder / 'pngs'}", "--method=gan", "--epsilon=5",
                                f"--output={out / 'table_flag' / 'synthetic.npz'}"]),
    }
    quiet = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    # The entry point filters TensorFlow's start-up lines only where TF_CPP_MIN_LOG_LEVEL is unset, as for a user.
    as_a_user = {key: value for key, value in quiet.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    processes = {
        name: subprocess.Popen([*program, *flags, *TINY], cwd=REPO, env=as_a_user if program is ENTRY_POINT else quiet,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (program, flags) in commands.items()
    }
    outputs = {name: process.communicate(timeout=600) for name, process in processes.items()}
    return folder, {name: (processes[name].returncode, *outputs[name]) for name in commands}


def _release(folder, name):
    npz = folder / "out" / name / "synthetic.npz"
    with np.load(npz, allow_pickle=False) as arrays:
        x, y, classes = arrays["x"], arrays["y"], tuple(arrays["classes"])
    statement = json.loads(npz.with_suffix(".json").read_text())
    return x, y, classes, statement, npz.with_suffix("")


def test_a_folder_of_16x16_pngs_gives_pngs_an_npz_and_a_statement(runs):
    folder, results = runs
    code, stdout, stderr = results["folder"]
    assert code == 0, stderr
    x, y, classes, statement, pngs = _release(folder, "folder")
    assert x.dtype == np.uint8 and x.shape[1:] == (16, 16, 1) and classes == CLASSES
    assert statement["epsilon"] <= 5.0 and statement["delta"] == 1e-3
    assert statement["data"]["image_shape"] == [16, 16, 1] and statement["data"]["classes"] == list(CLASSES)
    assert statement["data"]["pixel_range"] == [0.0, 255.0] and "treated as public" in statement["data"]["public"]
    assert statement["noise_reproducible"] is False and statement["num_samples"] == len(x) == len(y)
    assert sorted(p.name for p in pngs.iterdir()) == list(CLASSES)
    for label, name in enumerate(CLASSES):
        files = sorted((pngs / name).glob("*.png"))
        assert len(files) == np.sum(y == label)
        for path in files[:2]:
            assert np.asarray(Image.open(path)).shape == (16, 16)
    # The release folder holds the release only; the PRIVATE report is elsewhere and says so.
    assert sorted(p.name for p in pngs.parent.iterdir()) == ["synthetic", "synthetic.json", "synthetic.npz"]
    report = folder / "out" / "private"
    assert sorted(p.name for p in report.iterdir()) == [
        "synthetic.PRIVATE-class-means.png", "synthetic.PRIVATE-fidelity.md", "synthetic.PRIVATE-samples.png"]
    assert "NOT covered by the privacy guarantee" in (report / "synthetic.PRIVATE-fidelity.md").read_text()
    assert "PRIVATE" in stdout and "do not publish" in stdout
    assert str(PER_CLASS * len(CLASSES)) not in stdout  # the exact number of private images is not printed


@pytest.mark.slow  # a DP GAN phase traced and run in a new process: ~35 CPU seconds
def test_a_warm_started_gan_phase_splits_the_budget_in_one_ledger_and_resizes(tmp_path):
    folder = tmp_path
    _write_inputs(folder)
    flags = [f"--input={folder / 'mixed'}", "--image_size=16,16", "--epsilon=5", "--gan_epochs=1", "--gan_batch_size=8",
             "--release_fraction=0.6", "--num_images=12", f"--output={folder / 'out' / 'gan' / 'synthetic.npz'}", *TINY]
    quiet = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    process = subprocess.run([*MODULE, *flags], cwd=REPO, env=quiet, capture_output=True, text=True, timeout=600)
    code, stdout, stderr = process.returncode, process.stdout, process.stderr
    assert code == 0, stderr
    x, y, classes, statement, _ = _release(folder, "gan")
    assert x.shape == (12, 16, 16, 3) and classes == CLASSES
    assert statement["release_epsilon"] < statement["epsilon"] <= 5.0
    assert statement["settings"]["release_fraction"] == 0.6
    assert "resized to 16x16" in statement["data"]["resized"]
    assert "discriminator steps" in stdout


@pytest.mark.parametrize("name", ["mixed_sizes", "table_flag"])
def test_the_command_stops_bad_input_with_one_error_line_and_writes_nothing(runs, name):
    folder, results = runs
    code, _, stderr = results[name]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, stderr
    expected = {"mixed_sizes": r"is 16x16 RGB but .* is 20x24 RGB; pass --image_size=HEIGHT,WIDTH",
                "table_flag": r"--method only apply to a table \(--csv\), not to images \(--input\)"}[name]
    assert lines[0].startswith("privgan-synthesize: error: ") and re.search(expected, lines[0]), lines[0]
    assert not (folder / "out" / name).exists()


# In-process: the same checks without starting TensorFlow again.

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    _write_inputs(folder)
    return folder


def _plan(folder, **arguments):
    from privgan.cli.synthesize_images import plan_run

    return plan_run(**{"output": folder / "out" / "synthetic.npz", "epsilon": 3.0, "delta": 1e-3,
                       "release_steps": 5, "num_features": 64, "seed": 0, **arguments})


def test_an_npz_of_declared_float_pixels_comes_back_in_its_range_and_dtype(inputs):
    from privgan.cli.synthesize_images import prepare, synthesize

    run = _plan(inputs, input=inputs / "floats.npz", classes=["left", "right"], pixel_range="0,1",
                output=inputs / "floats_release" / "synthetic.npz")
    data, replaced = prepare(run)
    assert not replaced and data.image_shape == (12, 20, 1)
    _, _, statement, _ = synthesize(run, data)
    with np.load(run.output, allow_pickle=False) as arrays:
        x, classes = arrays["x"], tuple(arrays["classes"])
    assert x.dtype == np.float32 and x.shape[1:] == (12, 20, 1) and 0.0 <= x.min() and x.max() <= 1.0
    assert classes == ("left", "right") and statement["data"]["pixel_range"] == [0.0, 1.0]
    assert statement["epsilon"] <= 3.0
    assert np.asarray(Image.open(next(run.png_folder.rglob("*.png")))).shape == (12, 20)
    with pytest.raises(ValueError, match=r"an earlier release is there .* pass --overwrite"):
        prepare(run)


@pytest.mark.parametrize("arguments, message", [
    ({"input": "mixed"}, r"--input: images must all have one size and channel count; .* is 16x16 RGB but .* is "
                         r"20x24 RGB; pass --image_size=HEIGHT,WIDTH to resize them all"),
    ({"input": "empty"}, r"--input: the class folder 'disc' holds no image; every class needs images"),
    ({"input": "pngs", "epsilon": -1.0}, r"--epsilon must be"),
    ({"input": "pngs", "epsilon": float("inf")}, r"--epsilon must be"),
    ({"input": "pngs", "delta": 1.5}, r"delta must be in \(0, 1\)"),
    ({"input": "pngs", "image_size": "4,4"}, r"--image_size must be two integers height,width in \[8, 64\]"),
    ({"input": "floats.npz", "classes": ["left", "right"]},
     r"--input: x is float32: its pixel range must be declared with --pixel_range=LOW,HIGH"),
    ({"input": "floats.npz", "pixel_range": "0,1"}, r"--classes is required for an .npz input without a classes"),
    ({"input": "floats.npz", "pixel_range": "1,0", "classes": ["a", "b"]}, r"--pixel_range must be two finite"),
    ({"input": "floats.npz", "pixel_range": "0,1", "classes": ["only"]}, r"--classes must list at least 2"),
    ({"input": "bytes.npz", "pixel_range": "0,1"}, r"x has values outside --pixel_range \[0, 1\]"),
    ({"input": "bytes.npz", "classes": ["a", "b", "c"], "image_size": "8,8"}, None),  # uint8: range from the format
    ({"input": "pngs", "release_fraction": 0.5}, r"--release_fraction splits the budget with a GAN phase"),
    ({"input": "pngs", "gan_epochs": 1, "release_fraction": 1.0}, r"--release_fraction must be in \(0, 1\)"),
    ({"input": "pngs", "output": "pngs/release/synthetic.npz"}, r"would be written into or over --input"),
    ({"input": "pngs", "fidelity_report": "out/private"}, r"--fidelity_report .* is inside --output's folder"),
    ({"input": "pngs", "output": "synthetic.csv"}, r"--output must end in .npz"),
    ({"input": "nowhere"}, r"--input must be a folder with one subfolder of images per class, or an .npz file"),
])
def test_bad_input_is_one_error_naming_the_argument_and_nothing_is_written(inputs, arguments, message):
    from privgan.cli.synthesize_images import prepare

    arguments = dict(arguments)
    for key in ("input", "output", "fidelity_report"):
        if key in arguments:
            arguments[key] = inputs / arguments[key]
    before = sorted(path for path in inputs.rglob("*") if "floats_release" not in path.parts)
    if message is None:
        data, _ = prepare(_plan(inputs, **arguments))
        assert data.image_shape == (8, 8, 1) and data.pixel_range == (0.0, 255.0)
        return
    with pytest.raises(ValueError, match=message) as error:
        prepare(_plan(inputs, **arguments))
    assert "\n" not in str(error.value)
    assert sorted(path for path in inputs.rglob("*") if "floats_release" not in path.parts) == before


def test_synthetic_labels_follow_the_noisy_class_counts():
    from privgan.cli.synthesize_images import synthetic_labels

    labels = synthetic_labels([10.4, -3.0, 29.9])
    assert len(labels) == 40 and np.bincount(labels, minlength=3).tolist() == [10, 0, 30]
    assert np.bincount(synthetic_labels([1.0, 1.0, 2.0], 8), minlength=3).tolist() == [2, 2, 4]
    assert np.bincount(synthetic_labels([-1.0, -2.0]), minlength=2).tolist() == [1, 1]  # at least one per class
