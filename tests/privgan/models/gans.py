"""A small conditional DPGAN on uniform data, shared by the DPGAN tests."""

import keras
import numpy as np

from privgan.models.architectures import mlp_discriminator, mlp_generator
from privgan.models.dpgan import DPGAN

NUM_EXAMPLES, BATCH, FEATURES = 48, 8, 4
DELTA = 1e-5


def data(num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(NUM_EXAMPLES, FEATURES)).astype("float32"), rng.integers(0, num_classes, NUM_EXAMPLES)


def make_gan(num_classes=3, noise_multiplier=1.0, n_critic=2, **kwargs):
    gan = DPGAN(
        mlp_generator(output_shape=(FEATURES,), latent_dim=3, num_classes=num_classes, hidden=(8,)),
        mlp_discriminator(input_shape=(FEATURES,), num_classes=num_classes, hidden=(8,)),
        l2_norm_clip=1.0,
        noise_multiplier=noise_multiplier,
        num_examples=NUM_EXAMPLES,
        expected_batch_size=BATCH,
        num_classes=num_classes,
        n_critic=n_critic,
        seed=0,
        **kwargs,
    )
    gan.compile(d_optimizer=keras.optimizers.SGD(0.01), g_optimizer=keras.optimizers.SGD(0.01))
    return gan
