r"""privgan-synthesize --input=IMAGES: differentially private synthetic copies of a user's own labelled images.

  privgan-synthesize --input=photos/ --epsilon=3 --delta=1e-5 --output=release/synthetic.npz
  privgan-synthesize --input=digits.npz --classes=zero,one,two --pixel_range=0,1 --epsilon=3 --delta=1e-5 \
      --output=release/synthetic.npz --fidelity_report=private_report

--input is a folder with one subfolder of PNG/JPEG files per class (grey or RGB, 8 bit), or an .npz with
`x` (N, H, W) or (N, H, W, C) and integer labels `y`. What is public is said in the statement and never
read from the pixels or the labels: the image size and channels (every image must have the same, or
--image_size resizes them all), the class list (the subfolders' names; for an .npz --classes, or a
`classes` array in the file), the pixel range (0..255 for PNG, JPEG and uint8 arrays; any other dtype
needs --pixel_range). Any height and width from 8 to 64 pixels, square or not; larger or smaller images
need --image_size. The number of images is private.

The method is the demo's (`privgan.models.mean_embedding`, DP-MERF): the images are read once, their
random-feature mean embedding per class is released with Gaussian noise (one GaussianDpEvent), and a
convolutional generator is trained against the release (post-processing: free). --gan_epochs=N adds a
DP GAN phase warm-started from that generator (its discriminator reads the images in Poisson-sampled
DP-SGD steps); the budget is then split: --release_fraction of epsilon for the release, the rest for the
GAN's sigma, both in one ledger. The DP noise and the Poisson sampling are secret (OS entropy) unless
--noise_seed / --sampling_seed is given (research only: no guarantee against anyone who knows them).

Writes, next to --output (which must end in .npz): the .npz (`x` in the input's dtype and range, `y`,
`classes`), a folder of the same name with one subfolder of PNG files per class, and the privacy statement
(.json). As many images as the release's noisy count (--num_images to choose), in the noisy class
proportions. --fidelity_report=FOLDER (outside --output's folder) writes a PRIVATE report comparing them
with the private images (class means, pixel spread, figures): keep it, do not publish it.

Bad input stops before any training, with one error naming the argument and what is allowed, and
nothing is written; the release is written to a temporary folder and renamed into place.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import sys
import tempfile
import warnings

from absl import flags

from privgan.cli import command

_PROGRAM = "privgan-synthesize"
# The module of privgan-synthesize's flags ("__main__" under `python -m`): the image flags are registered
# under it, so that its --help lists them, and its other flags are the table flags refused with --input.
_command_module = {"name": "privgan.cli.synthesize"}
# Flags of privgan-synthesize that the images path reads too; every other table flag is refused with --input.
SHARED_FLAGS = ("epsilon", "delta", "output", "seed", "sampling_seed", "overwrite", "fidelity_report", "accountant")
_DEFAULT_RELEASE_FRACTION = 0.5

FLAGS = flags.FLAGS


def define_flags(module_name="privgan.cli.synthesize"):
    """Defines the image flags of privgan-synthesize (listed in its --help), once; called when the command
    runs, not at import, so that importing this module defines no flag that another module's could clash with.

    Args:
        module_name: the name of the module that defines the command's other flags.
    """
    if "input" in FLAGS:
        return
    # absl files the flags of the __main__ module under sys.argv[0] (and looks them up so).
    module_name = sys.argv[0] if module_name == "__main__" else module_name
    _command_module["name"] = module_name
    for define, name, default, text in (
        (flags.DEFINE_string, "input", None, "Images: a folder with one subfolder of PNG/JPEG files per class, or an "
         ".npz of x and y (selects the image mode; then --output ends in .npz)."),
        (flags.DEFINE_list, "classes", None, "Images: class names in label order (public), e.g. cat,dog; needed for an "
         ".npz without a classes array; for a folder, the order of its subfolders."),
        (flags.DEFINE_string, "pixel_range", None, "Images: public LOW,HIGH of an .npz's non-uint8 pixels (e.g. 0,1); "
         "never inferred from the data."),
        (flags.DEFINE_string, "image_size", None, "Images: resize every image to this public HEIGHT,WIDTH (each in "
         "[8, 64]); default: the images' common size."),
        (flags.DEFINE_integer, "num_images", None, "Images: synthetic images to write; default: the release's noisy "
         "count."),
        (flags.DEFINE_integer, "num_features", 8000, "Images: random Fourier features of the release."),
        (flags.DEFINE_integer, "release_steps", 2000, "Images: generator steps against the release (free "
         "post-processing)."),
        (flags.DEFINE_integer, "gan_epochs", 0, "Images: epochs of a DP GAN phase warm-started from the release's "
         "generator; 0 (default): none."),
        (flags.DEFINE_float, "release_fraction", None, "Images with --gan_epochs: share of --epsilon for the release, "
         f"in (0, 1) (default {_DEFAULT_RELEASE_FRACTION}); the GAN phase gets the rest."),
        (flags.DEFINE_integer, "gan_batch_size", 64, "Images with --gan_epochs: expected Poisson batch size of a D "
         "step."),
        (flags.DEFINE_integer, "noise_seed", None, "Images: fix the DP noise, for research only: the guarantee does "
         "not hold against anyone who knows it (default: secret, from OS entropy)."),
    ):
        define(name, default, text, module_name=module_name)

IMAGE_FLAGS = ("input", "classes", "pixel_range", "image_size", "num_images", "num_features", "release_steps",
               "gan_epochs", "release_fraction", "gan_batch_size", "noise_seed")


@dataclasses.dataclass(frozen=True)
class ImageRun:
    """The checked settings of one image release."""

    input: pathlib.Path
    output: pathlib.Path
    epsilon: float
    delta: float
    accountant: str
    classes: tuple | None
    pixel_range: tuple | None
    image_size: tuple | None
    num_images: int | None
    num_features: int
    release_steps: int
    gan_epochs: int
    release_fraction: float
    gan_batch_size: int
    seed: int | None
    noise_seed: int | None
    sampling_seed: int | None
    overwrite: bool
    fidelity_report: pathlib.Path | None

    def __post_init__(self):
        if not 0.0 < self.release_fraction <= 1.0:
            raise ValueError(f"--release_fraction must be in (0, 1), got {self.release_fraction}")

    @property
    def release_epsilon(self):
        """The epsilon the DP-MERF release is calibrated for: all of it without a GAN phase."""
        return self.epsilon * (self.release_fraction if self.gan_epochs else 1.0)

    @property
    def statement(self):
        return self.output.with_suffix(".json")

    @property
    def png_folder(self):
        return self.output.with_suffix("")

    def release_paths(self):
        return (self.output, self.statement, self.png_folder)


def _flag_values():
    """The image flags' and the shared flags' values, after refusing the table-only flags."""
    table_flags = sorted(
        flag.name for flag in FLAGS.get_flags_for_module(_command_module["name"])
        if flag.present and flag.name not in SHARED_FLAGS + IMAGE_FLAGS
    )
    if table_flags:
        raise ValueError(f"{', '.join('--' + name for name in table_flags)} only apply to a table (--csv), not "
                         "to images (--input)")
    missing = [f"--{name}" for name in ("epsilon", "delta", "output") if FLAGS[name].value is None]
    if missing:
        raise ValueError(f"missing required flag{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    values = {name: FLAGS[name].value for name in SHARED_FLAGS + IMAGE_FLAGS}
    values["accountant"] = values["accountant"] or "pld"
    return values


def plan_run(*, input, output, epsilon, delta, accountant="pld", classes=None, pixel_range=None, image_size=None,
             num_images=None, num_features=8000, release_steps=2000, gan_epochs=0, release_fraction=None,
             gan_batch_size=64, seed=None, noise_seed=None, sampling_seed=None, overwrite=False, fidelity_report=None):
    """The checked `ImageRun` of the command's arguments (flag names without "--"; pixel_range and
    image_size as the flags' text), cheapest checks first, before anything is read or trained.

    Raises:
        ValueError: naming the argument and its allowed range.
    """
    from privgan.accounting.events import check_accountant, check_count, check_delta, check_positive
    from privgan.data.image_folder import check_classes, check_image_size, check_pixel_range, parse_pair

    epsilon = check_positive(epsilon, name="--epsilon")
    delta = check_delta(delta)
    gan_epochs = check_count(gan_epochs, name="--gan_epochs", minimum=0)
    if release_fraction is not None:
        if not gan_epochs:
            raise ValueError("--release_fraction splits the budget with a GAN phase: it needs --gan_epochs >= 1")
        if not 0.0 < release_fraction < 1.0:
            raise ValueError(f"--release_fraction must be in (0, 1) (the GAN phase gets the rest), got "
                             f"{release_fraction}")
    if sampling_seed is not None and not gan_epochs:
        raise ValueError("--sampling_seed fixes the GAN phase's Poisson sampling: it needs --gan_epochs >= 1")
    output = pathlib.Path(output)
    if output.suffix.lower() != ".npz":
        raise ValueError(f"--output must end in .npz for images (the PNG folder and statement go beside it), got "
                         f"{str(output)!r}")
    if image_size is not None:
        image_size = check_image_size(parse_pair(image_size, name="--image_size", kind=float))
    if pixel_range is not None:
        pixel_range = check_pixel_range(parse_pair(pixel_range, name="--pixel_range"))
    return ImageRun(
        input=pathlib.Path(input), output=output, epsilon=epsilon, delta=delta, accountant=check_accountant(accountant),
        classes=None if classes is None else check_classes(classes), pixel_range=pixel_range, image_size=image_size,
        num_images=None if num_images is None else check_count(num_images, name="--num_images", minimum=1),
        num_features=_even(num_features), release_steps=check_count(release_steps, name="--release_steps", minimum=1),
        gan_epochs=gan_epochs,
        release_fraction=_DEFAULT_RELEASE_FRACTION if release_fraction is None else release_fraction,
        gan_batch_size=check_count(gan_batch_size, name="--gan_batch_size", minimum=1), seed=seed,
        noise_seed=noise_seed, sampling_seed=sampling_seed, overwrite=bool(overwrite),
        fidelity_report=None if fidelity_report is None else pathlib.Path(fidelity_report),
    )


def prepare(run):
    """Checks where everything goes, then reads the private images: `(data, replaced release files)`.

    Raises:
        ValueError: for a destination that cannot or may not be written, or images that do not fit.
    """
    replaced = _check_destinations(run)
    return _load(run), replaced


def _even(value):
    if int(value) != value or value < 2 or value % 2:
        raise ValueError(f"--num_features must be an even integer >= 2, got {value}")
    return int(value)


def _overlaps(path, other):
    """Whether writing `path` would write into, over or around `other` (resolved, links followed)."""
    path, other = pathlib.Path(path).resolve(), pathlib.Path(other).resolve()
    return path == other or other in path.parents or path in other.parents


def _check_destinations(run):
    """Checks where the release and the PRIVATE report go, before the images are read.

    Returns:
        The release's paths that exist and will be replaced (--overwrite).
    """
    from privgan.cli.release import SECOND_BUDGET
    from privgan.io import check_destination

    for path in run.release_paths():
        if _overlaps(path, run.input):
            raise ValueError(f"--output's {str(path)!r} would be written into or over --input {str(run.input)!r}; "
                             "choose an --output outside the private images")
    check_destination(run.output, name="--output")
    check_destination(run.statement, name="--output's statement")
    if run.png_folder.exists() and not run.png_folder.is_dir():
        raise ValueError(f"--output's PNG folder {str(run.png_folder)!r} is a file")
    existing = [path for path in run.release_paths() if path.exists()]
    if existing and not run.overwrite:
        raise ValueError(
            f"--output {str(run.output)!r}: an earlier release is there ({', '.join(p.name for p in existing)}); "
            f"pass --overwrite to replace it, or choose another path. Note that {SECOND_BUDGET}"
        )
    report = run.fidelity_report
    if report is not None:
        release = run.output.parent.resolve()
        if report.resolve() == release or release in report.resolve().parents:
            raise ValueError(
                f"--fidelity_report {str(report)!r} is inside --output's folder {str(run.output.parent)!r}, which is "
                "what gets published; the report is computed on the private images: give a folder outside it"
            )
        if _overlaps(report, run.input):
            raise ValueError(f"--fidelity_report {str(report)!r} overlaps --input {str(run.input)!r}")
        for path in _report_paths(run).values():
            check_destination(path, name="--fidelity_report")
    return existing


def _report_paths(run):
    stem = run.output.stem
    return {"markdown": run.fidelity_report / f"{stem}.PRIVATE-fidelity.md",
            "means": run.fidelity_report / f"{stem}.PRIVATE-class-means.png",
            "samples": run.fidelity_report / f"{stem}.PRIVATE-samples.png"}


def _load(run):
    from privgan.data.image_folder import load_image_folder, load_image_npz
    from privgan.models.architectures import IMAGE_SIDE_RANGE

    if run.input.is_dir():
        if run.pixel_range is not None:
            raise ValueError("--pixel_range is for an .npz of non-uint8 pixels; PNG/JPEG files are 0..255")
        data = load_image_folder(run.input, classes=run.classes, image_size=run.image_size)
    elif not run.input.is_file() or run.input.suffix.lower() != ".npz":
        raise ValueError(f"--input must be a folder with one subfolder of images per class, or an .npz file; "
                         f"{str(run.input)!r} is {'not an .npz file' if run.input.is_file() else 'not there'}")
    else:
        data = load_image_npz(run.input, classes=run.classes or _classes_in_file(run.input),
                              pixel_range=run.pixel_range, image_size=run.image_size)
    low, high = IMAGE_SIDE_RANGE
    height, width, _ = data.image_shape
    if not (low <= height <= high and low <= width <= high):
        raise ValueError(f"--input's images are {height}x{width}; the generator takes heights and widths in "
                         f"[{low}, {high}]: pass --image_size=HEIGHT,WIDTH to resize them (e.g. --image_size=32,32)")
    return data


def _classes_in_file(path):
    import numpy as np

    with np.load(path, allow_pickle=False) as arrays:
        if "classes" in arrays.files:
            return tuple(str(name) for name in arrays["classes"])
    raise ValueError("--classes is required for an .npz input without a classes array: the class names in the order "
                     "of the labels in y (e.g. --classes=cat,dog); the set of labels present in y is private")


def _train(data, run):
    """Phase 1 (DP-MERF release and free generator training), then the optional GAN phase."""
    import keras

    from privgan.models.architectures import dcgan_discriminator, dcgan_generator
    from privgan.models.mean_embedding import MeanEmbeddingGenerator
    from privgan.models.warm_start import warm_started_dpgan

    if run.seed is not None:
        keras.utils.set_random_seed(run.seed)
    num_classes = len(data.classes)
    source = MeanEmbeddingGenerator(
        dcgan_generator(image_shape=data.image_shape, latent_dim=32, num_classes=num_classes, width=32),
        num_classes=num_classes, num_features=run.num_features, batch_size=max(500, 2 * num_classes),
        seed=run.seed, noise_seed=run.noise_seed,
    )
    source.compile(optimizer=keras.optimizers.Adam(1e-3))
    source.release_embedding(data.x, data.y, target_epsilon=run.release_epsilon, delta=run.delta,
                             accountant=run.accountant)
    source.fit(epochs=1, steps_per_epoch=run.release_steps, verbose=0)
    if not run.gan_epochs:
        return source, source
    model = warm_started_dpgan(
        source, dcgan_discriminator(image_shape=data.image_shape, num_classes=num_classes, width=32),
        expected_batch_size=run.gan_batch_size, n_critic=5, ema_decay=0.99, seed=run.seed, noise_seed=run.noise_seed,
    )
    model.compile(d_optimizer=keras.optimizers.Adam(5e-4, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5))
    # verbose=0: Keras would print the losses, noiseless statistics of the private batches.
    model.fit(data.x, data.y, epochs=run.gan_epochs, target_epsilon=run.epsilon, delta=run.delta,
              accountant=run.accountant, sampling_seed=run.sampling_seed, verbose=0)
    return source, model


def synthetic_labels(noisy_counts, num_images=None):
    """Labels of the synthetic images: in the proportions of the release's noisy class counts (negative
    ones as 0), sorted by class; as many as their noisy total (at least one per class) unless given.

    A function of the release alone (post-processing).
    """
    import numpy as np

    counts = np.clip(np.asarray(noisy_counts, np.float64), 0.0, None)
    total = counts.sum()
    n = max(int(round(total)), len(counts)) if num_images is None else int(num_images)
    shares = counts / total * n if total > 0 else np.full(len(counts), n / len(counts))
    allotted = np.floor(shares).astype(np.int64)
    # Largest remainders get the images that flooring left over.
    allotted[np.argsort(allotted - shares, kind="stable")[: n - allotted.sum()]] += 1
    return np.repeat(np.arange(len(counts), dtype=np.int32), allotted)


def _statement(model, source, data, run, *, num_images):
    statement = model.privacy_statement(delta=run.delta, accountant=run.accountant).to_dict()
    statement.update({
        "data": data.public_description(),
        "num_samples": num_images,
        "data_file": run.output.name,
        "png_folder": run.png_folder.name,
        "release_epsilon": source.privacy_spent(delta=run.delta, accountant=run.accountant),
        "synthetic_class_proportions": "the release's noisy class counts (post-processing)",
        "settings": {"num_features": run.num_features, "release_steps": run.release_steps,
                     "gan_epochs": run.gan_epochs, "release_fraction": run.release_fraction if run.gan_epochs else 1.0,
                     "gan_batch_size": run.gan_batch_size if run.gan_epochs else None, "seed": run.seed,
                     "generator": "privgan.models.architectures.dcgan_generator (width 32, latent 32)"},
    })
    return statement


def write_release(run, *, x, y, classes, statement):
    """Writes the .npz, the PNG folder and the statement into a temporary folder beside --output, then renames
    each into place (the statement last): an error leaves no part of a release."""
    import numpy as np

    from privgan.data.image_folder import write_png_folders

    parent = run.output.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=parent, prefix=f".{run.output.stem}.", suffix=".partial"))
    try:
        with open(staging / run.output.name, "wb") as handle:
            np.savez_compressed(handle, x=x, y=y, classes=np.asarray(classes, dtype=str))
        png = x if x.dtype == np.uint8 else _png_pixels(x, statement["data"]["pixel_range"])
        write_png_folders(staging / run.png_folder.name, png, y, classes=classes)
        (staging / run.statement.name).write_text(
            json.dumps(statement, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
        if run.png_folder.is_dir():
            shutil.rmtree(run.png_folder)  # --overwrite was checked before training
        for path in (run.png_folder, run.output, run.statement):
            os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _png_pixels(x, pixel_range):
    """8-bit PNG pixels of images `x` whose values lie in the declared, public `pixel_range`."""
    import numpy as np

    low, high = pixel_range
    return np.rint(np.clip((x.astype(np.float64) - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def synthesize(run, data):
    """Trains on the private `data` as `run` says and writes the release.

    Returns:
        `(source, model, statement, (images in [0, 1], labels))`: the DP-MERF model, the final model (the
        same without a GAN phase), the statement written and the synthetic images.
    """
    from privgan.accounting.events import warn_if_delta_too_large

    source, model = _train(data, run)
    # The release's noisy count stands for N from here on: the exact number of images is not printed.
    noisy_counts = source.class_counts_
    warn_if_delta_too_large(run.delta, num_examples=max(1, int(round(float(noisy_counts.clip(0).sum())))))
    labels = synthetic_labels(noisy_counts, run.num_images)
    unit_images, _ = model.generate(len(labels), labels=labels)
    statement = _statement(model, source, data, run, num_images=len(labels))
    write_release(run, x=data.to_source_format(unit_images), y=labels, classes=data.classes, statement=statement)
    return source, model, statement, (unit_images, labels)


def main(argv):
    """The images path of privgan-synthesize (chosen by `--input`)."""
    if len(argv) > 1:
        command.fail(_PROGRAM, f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        run = plan_run(**_flag_values())
        data, replaced = prepare(run)
    except ValueError as error:
        command.fail(_PROGRAM, str(error))
    from privgan.cli.release import SECOND_BUDGET

    if replaced:
        warnings.warn(f"{run.output} holds an earlier release, replaced when this run is done; note that "
                      f"{SECOND_BUDGET}", stacklevel=2)
    try:
        source, model, statement, (unit_images, labels) = synthesize(run, data)
    except ValueError as error:
        command.fail(_PROGRAM, str(error))
    phases = f"one DP-MERF release (sigma = {source.noise_multiplier:.4f})"
    if run.gan_epochs:
        phases += (f", then {model.privacy_ledger.total_steps} DP GAN discriminator steps (sigma = "
                   f"{model.dp_config.noise_multiplier:.4f})")
    print(f"wrote {len(labels)} synthetic {'x'.join(map(str, data.image_shape[:2]))} images to {run.output} and "
          f"{run.png_folder}{os.sep}<class>/ and the privacy statement to {run.statement}: epsilon = "
          f"{statement['epsilon']:.4f} at delta = {run.delta:g} ({run.accountant.upper()}), {phases}")
    if run.fidelity_report is None:
        print(f"Publish {run.output.name}, {run.png_folder.name}{os.sep} and {run.statement.name}.")
        return
    from privgan.evaluation.image_report import write_image_fidelity_report

    paths = write_image_fidelity_report(data, unit_images, labels, paths=_report_paths(run), statement=statement)
    print(f"PRIVATE fidelity report (computed on the private images, not covered by the guarantee): "
          f"{paths['markdown']} (+ {paths['means'].name}, {paths['samples'].name}); keep it, do not publish it. "
          f"Publish {run.output.name}, {run.png_folder.name}{os.sep} and {run.statement.name} only.")
