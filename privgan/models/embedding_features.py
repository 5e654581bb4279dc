r"""Feature maps of bounded norm for the mean-embedding release (`privgan.models.mean_embedding`).

The release T = sum_i e_{y_i} (x) [alpha phi(x_i), beta] has L2 sensitivity 1 under add/remove-one as
long as |phi(x)| <= 1 for EVERY input x; the maps here have |phi(x)| = 1 exactly, by construction and
whatever the data:

- "pixels": random Fourier features of the flattened pixels, phi(x) = sqrt(1/F) [cos(W x), sin(W x)]
  (DP-MERF's map; the Gaussian kernel on raw pixels).
- "scattering": the same random Fourier features on the output of the fixed, public wavelet scattering
  transform S (`privgan.models.scattering.Scattering2D`): the Gaussian kernel exp(-|S x - S x'|^2 / 2 l^2).
  S is locally translation-invariant and stable to small deformations (Mallat 2012), so two strokes
  of the same digit a pixel apart are close in it, which they are not in pixel space; the filters are a
  closed-form choice, so they cost no data and no privacy (Tramèr & Boneh 2021).
- "both": the two maps side by side with weights a = `pixel_weight` and b = sqrt(1 - a^2):
  |[a phi_p(x), b phi_s(x)]|^2 = a^2 + b^2 = 1, so the sum of the two kernels is released under the
  same unit sensitivity (one release, one ledger event: the two embeddings are not two mechanisms).

S is differentiable, so the generator trains through it. The scattering output is divided by a public
constant (`scattering_scale`, a function of nothing but the transform's settings) before the Fourier
features, so that the length scales are on a familiar scale; any input transform leaves |phi| = 1.

`build_feature_map(name, ...)` is the registry; `FEATURE_MAPS` lists the names.
"""

import math

import keras
import numpy as np

from privgan.models.scattering import Scattering2D

FEATURE_MAPS = ("pixels", "scattering", "both")

# Gaussian-kernel length scales for the scattering features, in units of the rescaled transform (chosen
# on a validation split carved from MNIST's training set, never on its test split; see
# docs/results/mean_embedding_mnist.md): about 0.5 x, 1 x and 2 x the typical distance between two digits.
DEFAULT_SCATTERING_LENGTH_SCALES = (0.5, 1.0, 2.0)
# a = b = sqrt(1/2): the two kernels weigh the same.
DEFAULT_PIXEL_WEIGHT = math.sqrt(0.5)


def _seed_pair(seed):
    """Two independent public seeds from one (or two fresh random ones for None)."""
    if seed is None:
        return None, None
    first, second = np.random.SeedSequence(seed).generate_state(2)
    return int(first), int(second)


@keras.saving.register_keras_serializable(package="privgan")
class ImageEmbeddingFeatures(keras.layers.Layer):
    """Unit-norm embedding of images: Fourier features of pixels, of scattering, or both (weights a, b).

    Args:
        pixel_features: width of the pixel block (an even integer), 0 for none.
        scattering_features: width of the scattering block (an even integer), 0 for none.
        pixel_length_scales: kernel length scales of the pixel block (> 0).
        scattering_length_scales: kernel length scales of the rescaled scattering block (> 0).
        pixel_weight: a in (0, 1), the weight of the pixel block when both are present (b = sqrt(1 - a^2));
            ignored when only one block is present (its weight is then 1).
        scattering_scales: J of the scattering transform (image side must be a multiple of 2^J).
        orientations: L of the scattering transform.
        scattering_scale: public divisor of the scattering output, > 0.
        seed: public seed of the frequencies (None: random).
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, *, pixel_features, scattering_features, pixel_length_scales=(1.0,),
                 scattering_length_scales=DEFAULT_SCATTERING_LENGTH_SCALES, pixel_weight=DEFAULT_PIXEL_WEIGHT,
                 scattering_scales=2, orientations=4, scattering_scale=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("pixel_features", pixel_features), ("scattering_features", scattering_features)):
            if int(value) != value or value < 0 or value % 2:
                raise ValueError(f"{name} must be 0 or an even integer >= 2, got {value}")
        if not pixel_features and not scattering_features:
            raise ValueError("pixel_features and scattering_features cannot both be 0")
        if pixel_features and scattering_features and not 0.0 < pixel_weight < 1.0:
            raise ValueError(f"pixel_weight must be in (0, 1), got {pixel_weight}")
        if not scattering_scale > 0:
            raise ValueError(f"scattering_scale must be > 0, got {scattering_scale}")
        # Imported here: mean_embedding imports this module for the registry.
        from privgan.models.mean_embedding import RandomFourierFeatures

        self.pixel_features = int(pixel_features)
        self.scattering_features = int(scattering_features)
        self.pixel_length_scales = tuple(float(v) for v in pixel_length_scales)
        self.scattering_length_scales = tuple(float(v) for v in scattering_length_scales)
        self.pixel_weight = float(pixel_weight)
        self.scattering_scales = int(scattering_scales)
        self.orientations = int(orientations)
        self.scattering_scale = float(scattering_scale)
        self.seed = seed
        pixel_seed, scattering_seed = _seed_pair(seed)
        self.pixels = self.fourier_scattering = self.scattering = None
        if self.pixel_features:
            self.pixels = RandomFourierFeatures(self.pixel_features, length_scales=self.pixel_length_scales,
                                                seed=pixel_seed, name="pixel_fourier_features")
        if self.scattering_features:
            self.scattering = Scattering2D(scales=self.scattering_scales, orientations=self.orientations,
                                           name="scattering")
            self.fourier_scattering = RandomFourierFeatures(
                self.scattering_features, length_scales=self.scattering_length_scales, seed=scattering_seed,
                name="scattering_fourier_features")

    @property
    def num_features(self):
        return self.pixel_features + self.scattering_features

    @property
    def block_weights(self):
        """(a, b): the weights of the pixel and scattering blocks, a^2 + b^2 = 1 (a block that is absent: 0)."""
        if not self.scattering_features:
            return 1.0, 0.0
        if not self.pixel_features:
            return 0.0, 1.0
        return self.pixel_weight, math.sqrt(1.0 - self.pixel_weight**2)

    def build(self, input_shape):
        if self.pixels is not None:
            self.pixels.build(input_shape)
        if self.scattering is not None:
            self.scattering.build(input_shape)
            self.fourier_scattering.build(self.scattering.compute_output_shape(input_shape))
        super().build(input_shape)

    def call(self, inputs):
        pixel_weight, scattering_weight = self.block_weights
        blocks = []
        if self.pixels is not None:
            blocks.append(pixel_weight * self.pixels(inputs))
        if self.scattering is not None:
            transformed = self.scattering(keras.ops.cast(inputs, "float32")) / self.scattering_scale
            blocks.append(scattering_weight * self.fourier_scattering(transformed))
        return blocks[0] if len(blocks) == 1 else keras.ops.concatenate(blocks, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_features)

    def get_config(self):
        return {**super().get_config(), "pixel_features": self.pixel_features,
                "scattering_features": self.scattering_features,
                "pixel_length_scales": list(self.pixel_length_scales),
                "scattering_length_scales": list(self.scattering_length_scales), "pixel_weight": self.pixel_weight,
                "scattering_scales": self.scattering_scales, "orientations": self.orientations,
                "scattering_scale": self.scattering_scale, "seed": self.seed}

    def describe(self):
        """One phrase for the privacy statement and the ledger."""
        parts = []
        pixel_weight, scattering_weight = self.block_weights
        if self.pixel_features:
            parts.append(f"{self.pixel_features} random Fourier features of the pixels (weight {pixel_weight:.3g})")
        if self.scattering_features:
            parts.append(f"{self.scattering_features} random Fourier features of the public wavelet scattering "
                         f"transform (J={self.scattering_scales}, L={self.orientations}; weight "
                         f"{scattering_weight:.3g})")
        return " and ".join(parts)


def build_feature_map(name, *, num_features, sample_shape, length_scales, seed=None, options=None):
    """The feature map called `name` (one of `FEATURE_MAPS`), built for samples of `sample_shape`.

    Args:
        name: "pixels", "scattering" or "both".
        num_features: total output width (even; split in half, each half even, for "both").
        sample_shape: shape of one sample (images (side, side, 1) for the scattering maps).
        length_scales: kernel length scales of the pixel block.
        seed: public seed of the random frequencies.
        options: for the scattering maps, keyword arguments of `ImageEmbeddingFeatures` (e.g.
            `pixel_weight`, `orientations`, `scattering_length_scales`, `scattering_scale`).

    Returns:
        A Keras layer with |phi(x)| = 1 for every x (built).

    Raises:
        ValueError: for an unknown name, bad options or samples the scattering transform cannot take.
    """
    # Imported here: mean_embedding imports this module.
    from privgan.models.mean_embedding import RandomFourierFeatures

    options = dict(options or {})
    if name not in FEATURE_MAPS:
        raise ValueError(f"features must be one of {FEATURE_MAPS}, got {name!r}")
    if name == "pixels":
        if options:
            raise ValueError(f"the pixels feature map takes no options, got {sorted(options)}")
        layer = RandomFourierFeatures(num_features, length_scales=length_scales, seed=seed,
                                      name="random_fourier_features")
    else:
        if len(sample_shape) != 3 or sample_shape[0] != sample_shape[1] or sample_shape[2] != 1:
            raise ValueError(f"features={name!r} needs grey-scale square images (side, side, 1), got samples of "
                             f"shape {tuple(sample_shape)}")
        if name == "both":
            half = (int(num_features) // 4) * 2
            widths = {"pixel_features": half, "scattering_features": int(num_features) - half}
        else:
            widths = {"pixel_features": 0, "scattering_features": int(num_features)}
        layer = ImageEmbeddingFeatures(**widths, pixel_length_scales=length_scales, seed=seed, **options,
                                       name=f"{name}_embedding_features")
    layer.build((None, *sample_shape))
    return layer
