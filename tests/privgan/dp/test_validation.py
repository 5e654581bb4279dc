import keras
import pytest

from privgan.dp import NonPrivateLayerError, check_private_model, make_private


def test_batch_normalization_is_refused_by_name():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(name="bn1")])
    with pytest.raises(NonPrivateLayerError, match="'bn1'.*BatchNormalization"):
        make_private(model, l2_norm_clip=1.0, noise_multiplier=1.0, num_examples=10, expected_batch_size=2)


def test_nested_batch_normalization_is_found():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(name="deep_bn")])
    outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(1)])
    with pytest.raises(NonPrivateLayerError, match="deep_bn"):
        check_private_model(outer, role="discriminator")


def test_layers_declaring_that_they_mix_examples_are_refused():
    class BatchMean(keras.layers.Layer):
        mixes_examples = True

        def call(self, inputs):
            return inputs - keras.ops.mean(inputs, axis=0)

    with pytest.raises(NonPrivateLayerError, match="discriminator contains layer"):
        check_private_model(keras.Sequential([keras.Input((2,)), BatchMean()]), role="discriminator")


def test_per_example_normalisation_is_allowed():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.LayerNormalization(),
                              keras.layers.GroupNormalization(groups=1), keras.layers.Dropout(0.1)])
    check_private_model(model)
