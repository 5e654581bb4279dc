"""Builders: shapes, conditioning inputs, no BatchNorm in discriminators, clear errors."""

import keras
import numpy as np
import pytest

from privgan.dp import check_private_model
from privgan.models import architectures


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (8, 8, 1), (16, 16, 1), (20, 30, 3), (64, 40, 3)])
@pytest.mark.parametrize("num_classes", [None, 10])
def test_dcgan_pair_shapes(shape, num_classes):
    generator = architectures.dcgan_generator(image_shape=shape, latent_dim=8, num_classes=num_classes, width=4)
    discriminator = architectures.dcgan_discriminator(image_shape=shape, num_classes=num_classes, width=4)
    latent = keras.ops.zeros((2, 8))
    labels = keras.ops.convert_to_tensor([0, 9], "int32")
    images = generator(latent if num_classes is None else [latent, labels])
    assert images.shape == (2, *shape)
    assert float(keras.ops.min(images)) >= 0 and float(keras.ops.max(images)) <= 1
    logits = discriminator(images if num_classes is None else [images, labels])
    assert logits.shape == (2, 1)
    check_private_model(discriminator)


def test_conditional_discriminator_depends_on_the_label():
    discriminator = architectures.dcgan_discriminator(image_shape=(28, 28, 1), num_classes=10, width=4)
    images = np.zeros((2, 28, 28, 1), "float32")
    labels = keras.ops.convert_to_tensor([0, 1], "int32")
    logits = keras.ops.convert_to_numpy(discriminator([keras.ops.convert_to_tensor(images), labels]))
    assert logits[0, 0] != logits[1, 0]


def test_mlp_pair_and_errors():
    generator = architectures.mlp_generator(output_shape=(8, 8, 1), latent_dim=4, num_classes=3)
    discriminator = architectures.mlp_discriminator(input_shape=(8, 8, 1), num_classes=3)
    labels = keras.ops.arange(3, dtype="int32")
    samples = generator([keras.ops.zeros((3, 4)), labels])
    assert samples.shape == (3, 8, 8, 1)
    assert discriminator([samples, labels]).shape == (3, 1)
    for shape in [(4, 4, 1), (16, 65, 1), (16, 16)]:
        with pytest.raises(ValueError, match=r"image_shape must be \(height, width, channels\) with height and width "
                           r"integers in \[8, 64\], got"):
            architectures.dcgan_generator(image_shape=shape)
    with pytest.raises(ValueError, match=r"num_classes must be None \(unconditional\) or an integer >= 2, got 1"):
        architectures.dcgan_discriminator(image_shape=(28, 28, 1), num_classes=1)


@pytest.mark.parametrize("normalization, layer_type", [("batch", "BatchNormalization"),
                                                       ("layer", "LayerNormalization"), (None, None)])
def test_dcgan_generator_normalization(normalization, layer_type):
    generator = architectures.dcgan_generator(image_shape=(28, 28, 1), latent_dim=4, num_classes=3, width=4,
                                              normalization=normalization)
    kinds = {type(layer).__name__ for layer in generator.layers}
    assert ({"BatchNormalization", "LayerNormalization"} & kinds) == ({layer_type} if layer_type else set())
    # Per-sample normalisation: one sample's output does not depend on the rest of the batch.
    latent = keras.random.normal((3, 4), seed=0)
    labels = keras.ops.convert_to_tensor([0, 1, 2], "int32")
    if normalization != "batch":
        whole = keras.ops.convert_to_numpy(generator([latent, labels], training=True))
        alone = keras.ops.convert_to_numpy(generator([latent[:1], labels[:1]], training=True))
        np.testing.assert_allclose(whole[:1], alone, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"normalization must be one of \('batch', 'layer', None\), got 'group'"):
        architectures.dcgan_generator(image_shape=(28, 28, 1), normalization="group")


def test_projection_discriminator_is_private_and_uses_the_label():
    discriminator = architectures.dcgan_discriminator(image_shape=(28, 28, 1), num_classes=3, width=4, projection=True)
    check_private_model(discriminator)
    projection = discriminator.get_layer("label_projection")
    # Only the projection term differs between the labels once the input plane is zeroed.
    discriminator.get_layer("label_embedding").set_weights([np.zeros((3, 28 * 28), "float32")])
    images = keras.random.uniform((2, 28, 28, 1), seed=0)
    labels = keras.ops.convert_to_tensor([0, 1], "int32")
    same_image = keras.ops.concatenate([images[:1], images[:1]])
    before = keras.ops.convert_to_numpy(discriminator([same_image, labels]))
    assert before[0, 0] != before[1, 0]
    projection.set_weights([np.zeros_like(projection.get_weights()[0])])
    after = keras.ops.convert_to_numpy(discriminator([same_image, labels]))
    assert after[0, 0] == pytest.approx(after[1, 0])
    with pytest.raises(ValueError, match="projection=True needs num_classes"):
        architectures.dcgan_discriminator(image_shape=(28, 28, 1), projection=True)
