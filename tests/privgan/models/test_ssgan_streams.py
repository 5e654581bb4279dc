"""SemiSupervisedGAN's check that its two streams are disjoint: both directions, in every method, whatever the
order of the calls, across save/load without publishing the digests, and refused when it cannot be made."""

import json
import zipfile

import keras
import numpy as np
import pytest

from privgan.models import SemiSupervisedGAN
from privgan.models.architectures import mlp_generator
from privgan.models.ssgan_streams import image_digests

FEATURES, CLASSES, NUM_LABELLED, NUM_UNLABELLED = 6, 3, 12, 40
_rng = np.random.default_rng(0)
X_L, X_L_OTHER = (_rng.normal(size=(NUM_LABELLED, FEATURES)).astype("float32") for _ in range(2))
X_U, X_U_OTHER = (_rng.normal(size=(NUM_UNLABELLED, FEATURES)).astype("float32") for _ in range(2))
Y_L = np.arange(NUM_LABELLED) % CLASSES
# Each set with two images of the other stream's in place of two of its own.
X_U_WITH_LABELLED = np.concatenate([X_U[:-2], X_L[[3, 5]]])
X_L_WITH_UNLABELLED = np.concatenate([X_L[:-2], X_U[[3, 5]]])


def make():
    keras.utils.set_random_seed(0)
    discriminator = keras.Sequential([keras.Input((FEATURES,)),
                                      keras.layers.Dense(4, use_bias=False, name="projection"),
                                      keras.layers.Dense(CLASSES)])
    gan = SemiSupervisedGAN(mlp_generator(output_shape=(FEATURES,), latent_dim=2, hidden=(4,)), discriminator,
                            num_labelled=NUM_LABELLED, num_unlabelled=NUM_UNLABELLED, labelled_batch_size=6,
                            unlabelled_batch_size=20, labelled_gradient="none", l2_norm_clip=1.0,
                            noise_multiplier=5.0, seed=0)
    gan.compile(run_eagerly=True)  # two steps: tracing would cost more than running
    return gan


# The methods that read each stream; `fit` reads both, here with a fresh set in the other stream.
LABELLED_READS = {
    "fit": lambda gan, x: gan.fit(x, Y_L, X_U_OTHER, epochs=1, verbose=0),
    "fit_head": lambda gan, x: gan.fit_head(x, Y_L, epochs=1, expected_batch_size=6, noise_multiplier=5.0,
                                            verbose=0),
    "fit_centroid_head": lambda gan, x: gan.fit_centroid_head(x, Y_L, noise_multiplier=5.0),
}
UNLABELLED_READS = {
    "fit": lambda gan, x: gan.fit(X_L_OTHER, Y_L, x, epochs=1, verbose=0),
    "fit_projection": lambda gan, x: gan.fit_projection(x, noise_multiplier=5.0),
    "refine_centroid_head": lambda gan, x: gan.refine_centroid_head(x, rounds=1, noise_multiplier=5.0),
}


def refused_without_cost(gan, read, x, match):
    """`read(gan, x)` raises ValueError matching `match` before any private read: nothing charged, no step."""
    ledger, steps = gan.privacy_ledger, int(gan._global_dp_step())
    with pytest.raises(ValueError, match=match):
        read(gan, x)
    assert gan.privacy_ledger == ledger and int(gan._global_dp_step()) == steps


@pytest.mark.parametrize("then", UNLABELLED_READS)
@pytest.mark.parametrize("first", LABELLED_READS)
def test_unlabelled_images_that_a_labelled_method_read_earlier_are_refused(first, then):
    gan = make()
    LABELLED_READS[first](gan, X_L)
    refused_without_cost(gan, UNLABELLED_READS[then], X_U_WITH_LABELLED,
                         r"x_unlabelled shares images with the labelled set that an earlier call read \(2 of its 40 "
                         r"images, first at index 38\)")
    UNLABELLED_READS[then](gan, X_U)  # the disjoint set is read


@pytest.mark.parametrize("then", LABELLED_READS)
@pytest.mark.parametrize("first", UNLABELLED_READS)
def test_labelled_images_that_an_unlabelled_method_read_earlier_are_refused(first, then):
    gan = make()
    UNLABELLED_READS[first](gan, X_U)
    refused_without_cost(gan, LABELLED_READS[then], X_L_WITH_UNLABELLED,
                         "x_labelled shares images with the unlabelled set")
    LABELLED_READS[then](gan, X_L)


def test_the_check_compares_exact_bytes_only():
    # Documented limit: the same image normalised otherwise is another byte string, so it passes.
    gan = make()
    gan.fit_centroid_head(X_L, Y_L, noise_multiplier=5.0)
    gan.fit_projection(np.concatenate([X_U[:-2], X_L[[3, 5]] * 0.5 + 0.5]), noise_multiplier=5.0)
    assert image_digests(X_L[:1].astype("float64")) == image_digests(X_L[:1])  # compared as float32


def saved_and_loaded(gan, path):
    gan.save(path)
    return keras.models.load_model(path)


def test_after_save_and_load_a_private_read_is_refused_until_the_private_records_are_restored(tmp_path):
    gan = make()
    gan.fit_centroid_head(X_L, Y_L, noise_multiplier=5.0)
    gan.stream_records.save(tmp_path / "private" / "streams.npz")
    loaded = saved_and_loaded(gan, tmp_path / "ssgan.keras")
    assert loaded.privacy_ledger == gan.privacy_ledger
    for read in (UNLABELLED_READS["fit_projection"], UNLABELLED_READS["refine_centroid_head"]):
        # Refused, not warned: even the disjoint set, since nothing on hand says what was read.
        for x in (X_U_WITH_LABELLED, X_U):
            refused_without_cost(loaded, read, x, r"(fit_projection|refine_centroid_head) cannot check .* loaded "
                                                  r"from a file.*stream_records.restore\(path\)")
    refused_without_cost(loaded, LABELLED_READS["fit_head"], X_L, "fit_head cannot check")
    loaded.stream_records.restore(tmp_path / "private" / "streams.npz")
    refused_without_cost(loaded, UNLABELLED_READS["fit_projection"], X_U_WITH_LABELLED,
                         "x_unlabelled shares images with the labelled set")
    loaded.fit_projection(X_U, noise_multiplier=5.0)
    refused_without_cost(loaded, LABELLED_READS["fit_centroid_head"], X_L_WITH_UNLABELLED,
                         "x_labelled shares images with the unlabelled set")
    # Saved and loaded again, the records are back with a new save of them; a stale file is refused.
    again = saved_and_loaded(loaded, tmp_path / "again.keras")
    with pytest.raises(ValueError, match="after 1 reads of private images, but the model made 2"):
        again.stream_records.restore(tmp_path / "private" / "streams.npz")
    with pytest.raises(ValueError, match="another model"):
        make().stream_records.restore(tmp_path / "private" / "streams.npz")
    loaded.stream_records.save(tmp_path / "private" / "streams.npz")
    again.stream_records.restore(tmp_path / "private" / "streams.npz")
    refused_without_cost(again, LABELLED_READS["fit_head"], X_L_WITH_UNLABELLED,
                         "x_labelled shares images with the unlabelled set")


def test_the_saved_model_holds_no_digest_of_a_private_image(tmp_path):
    gan = make()
    gan.fit(X_L, Y_L, X_U, epochs=1, verbose=0)
    gan.save(tmp_path / "ssgan.keras")
    with zipfile.ZipFile(tmp_path / "ssgan.keras") as archive:
        contents = b"".join(archive.read(name) for name in archive.namelist())
        config = json.loads(archive.read("config.json"))
    assert set(config["config"]["stream_records"]) == {"record_id", "reads"}
    for digest in image_digests(np.concatenate([X_L, X_U])):
        assert digest not in contents and digest.hex().encode() not in contents


def test_a_model_that_read_nothing_needs_no_records_after_load(tmp_path):
    loaded = saved_and_loaded(make(), tmp_path / "ssgan.keras")
    loaded.fit_centroid_head(X_L, Y_L, noise_multiplier=5.0)
    refused_without_cost(loaded, UNLABELLED_READS["fit_projection"], X_U_WITH_LABELLED, "shares images")


def without_stream_records(path):
    """Rewrites a saved model as an earlier privgan wrote it: no `stream_records` in its config."""
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    del config["config"]["stream_records"]
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def test_a_model_from_an_older_file_refuses_private_reads_until_the_images_are_declared(tmp_path):
    gan = make()
    gan.fit_centroid_head(X_L, Y_L, noise_multiplier=5.0)
    gan.save(tmp_path / "old.keras")
    without_stream_records(tmp_path / "old.keras")
    loaded = keras.models.load_model(tmp_path / "old.keras")
    assert loaded.privacy_ledger == gan.privacy_ledger
    for reads, x in ((LABELLED_READS, X_L), (UNLABELLED_READS, X_U)):
        for method, read in reads.items():
            refused_without_cost(loaded, read, x,
                                 rf"{method} cannot check .* saved by an earlier privgan.*stream_records.declare")
    with pytest.raises(ValueError, match="cannot save the stream records"):
        loaded.stream_records.save(tmp_path / "streams.npz")
    assert not (tmp_path / "streams.npz").exists()
    # Declared images are checked as a read: an overlap is refused and leaves the records unknown.
    with pytest.raises(ValueError, match="2 of the 12 images of x_labelled"):
        loaded.stream_records.declare(x_labelled=X_L, x_unlabelled=X_U_WITH_LABELLED)
    refused_without_cost(loaded, UNLABELLED_READS["fit_projection"], X_U, "saved by an earlier privgan")
    loaded.stream_records.declare(x_labelled=X_L)
    refused_without_cost(loaded, UNLABELLED_READS["fit_projection"], X_U_WITH_LABELLED,
                         "x_unlabelled shares images with the labelled set")
    loaded.fit_projection(X_U, noise_multiplier=5.0)
