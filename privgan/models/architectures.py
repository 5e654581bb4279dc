"""Generator and discriminator builders for DPGAN: DCGAN-style convolutional pairs and an MLP pair.

Every builder returns a built functional Keras model. Unconditional models take one input (the latent
vector, or the image); conditional ones (`num_classes` given) take `[input, labels]` with integer labels
of shape (batch,). Generators end in a sigmoid, so they emit images in [0, 1]: scale the private data to
that range by a public constant (255 for MNIST bytes, 16 for the 8x8 digits).

Discriminators have no BatchNormalization: it mixes the examples of a batch, so per-example clipping
would not bound one example's influence (`privgan.dp.check_private_model` refuses it). They use
LeakyReLU and no normalisation. Generators may use BatchNormalization: they never see private data, so
their updates are post-processing. The convolutional generator can use LayerNormalization instead, which
normalises each sample on its own and so behaves the same in training and in `generate` (where BatchNorm
switches to moving averages). In a 400-step non-private MNIST check, BatchNorm kept G's samples diverse
while G with LayerNorm or without normalisation collapsed to one image: "batch" stays the default.

The discriminator is conditioned by an embedding of the label, reshaped to one extra image channel (conv)
or concatenated to the flattened image (MLP): an Embedding layer has a fast per-example clipping rule,
and the label is part of the private example it clips.
"""

import math

import keras

# Height and width of the convolutional pair's images: any value in this range, square or not.
IMAGE_SIDE_RANGE = (8, 64)
GENERATOR_NORMALIZATIONS = ("batch", "layer", None)


def _check_num_classes(num_classes):
    if num_classes is not None and (int(num_classes) != num_classes or num_classes < 2):
        raise ValueError(f"num_classes must be None (unconditional) or an integer >= 2, got {num_classes}")


def _check_positive_int(value, *, name):
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")


def _check_conv_image_shape(image_shape):
    low, high = IMAGE_SIDE_RANGE
    if len(image_shape) != 3 or not all(int(side) == side and low <= side <= high for side in image_shape[:2]):
        raise ValueError(
            f"image_shape must be (height, width, channels) with height and width integers in [{low}, {high}], "
            f"got {image_shape}"
        )
    _check_positive_int(image_shape[2], name="image_shape[2] (channels)")


def _resolutions(height, width):
    """Stride-2 steps k of the convolutional pair: 2 below 32 pixels on the shorter side (28x28 MNIST keeps
    its 7x7 start), 3 from 32 on."""
    return 2 if min(height, width) < 32 else 3


def _label_input():
    return keras.Input(shape=(), dtype="int32", name="labels")


def _generator_trunk(latent_dim, num_classes, *, label_embedding):
    """Latent input (and label input), returned with the tensor G starts from."""
    latent = keras.Input(shape=(latent_dim,), name="latent")
    if num_classes is None:
        return [latent], latent
    labels = _label_input()
    embedded = keras.layers.Embedding(num_classes, label_embedding, name="label_embedding")(labels)
    return [latent, labels], keras.layers.Concatenate()([latent, embedded])


def _outputs(inputs):
    return inputs if len(inputs) > 1 else inputs[0]


def dcgan_generator(*, image_shape, latent_dim=64, num_classes=None, width=64, normalization="batch"):
    """A DCGAN-style generator for HxWxC images in [0, 1], H and W anywhere in [8, 64].

    Dense to a ceil(H / 2^k) x ceil(W / 2^k) x 2w map (k = 2 when the shorter side is below 32, else 3),
    then k stride-2 transposed convolutions halving the width, the last one to C sigmoid channels, cropped
    to H x W where the sides are not multiples of 2^k (28x28 and 32x32 need no crop).

    Args:
        image_shape: (height, width, channels), height and width in [8, 64].
        latent_dim: size of the Gaussian latent vector, >= 1.
        num_classes: None, or the number of classes to condition on (labels embedded and concatenated
            to the latent vector).
        width: channels of the last hidden feature map, >= 1.
        normalization: after the hidden layers, "batch" (BatchNormalization, allowed in G, which sees no
            private data), "layer" (LayerNormalization over each sample's features) or None.

    Returns:
        A Keras model `latent -> images` (or `[latent, labels] -> images`).

    Raises:
        ValueError: for an unsupported image shape or an out-of-range argument.
    """
    _check_conv_image_shape(image_shape)
    _check_num_classes(num_classes)
    _check_positive_int(latent_dim, name="latent_dim")
    _check_positive_int(width, name="width")
    if normalization not in GENERATOR_NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {GENERATOR_NORMALIZATIONS}, got {normalization!r}")
    height, width_pixels, channels = (int(v) for v in image_shape)
    upsamplings = _resolutions(height, width_pixels)
    base_height, base_width = -(-height // 2**upsamplings), -(-width_pixels // 2**upsamplings)
    inputs, h = _generator_trunk(latent_dim, num_classes, label_embedding=min(latent_dim, 32))

    def activate(h):
        if normalization == "batch":
            h = keras.layers.BatchNormalization()(h)
        elif normalization == "layer":
            h = keras.layers.LayerNormalization(axis=list(range(1, len(h.shape))))(h)
        return keras.layers.ReLU()(h)

    filters = width * 2 ** (upsamplings - 1)
    h = activate(keras.layers.Dense(base_height * base_width * filters, use_bias=normalization is None)(h))
    h = keras.layers.Reshape((base_height, base_width, filters))(h)
    for _ in range(upsamplings - 1):
        filters //= 2
        h = activate(keras.layers.Conv2DTranspose(max(filters, 1), 4, strides=2, padding="same",
                                                  use_bias=normalization is None)(h))
    images = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", activation="sigmoid")(h)
    extra_height, extra_width = base_height * 2**upsamplings - height, base_width * 2**upsamplings - width_pixels
    if extra_height or extra_width:
        crop = tuple((extra // 2, extra - extra // 2) for extra in (extra_height, extra_width))
        images = keras.layers.Cropping2D(crop)(images)
    return keras.Model(_outputs(inputs), images, name="dcgan_generator")


def dcgan_discriminator(*, image_shape, num_classes=None, width=32, projection=False, num_logits=1):
    """A DCGAN-style discriminator (no normalisation) for HxWxC images (H, W in [8, 64]), one logit out.

    Stride-2 4x4 convolutions with width, 2 x width (and 4 x width when the shorter side is 32 or more)
    filters and LeakyReLU(0.2),
    then a Dense logit. A conditional one sees the label as an extra channel (an embedded plane) and,
    with `projection`, also adds to the logit the inner product of the flattened features with an
    embedding of the label (the projection discriminator of Miyato & Koyama 2018): a more direct signal
    of whether the image fits its label than the input plane alone.

    Args:
        image_shape: (height, width, channels), height and width in [8, 64].
        num_classes: None, or the number of classes of the labels it receives.
        width: filters of the first convolution, >= 1.
        projection: add the projection term (conditional only).
        num_logits: outputs of the last Dense layer, >= 1: 1 for a GAN, K for the K-class discriminator
            of a semi-supervised GAN (`privgan.models.SemiSupervisedGAN`).

    Returns:
        A Keras model `images -> logits (batch, num_logits)` (or `[images, labels] -> logits`); the
        flattened features before the logits come from the layer named "features".

    Raises:
        ValueError: for an unsupported image shape or an out-of-range argument.
    """
    _check_conv_image_shape(image_shape)
    _check_num_classes(num_classes)
    _check_positive_int(width, name="width")
    _check_positive_int(num_logits, name="num_logits")
    if projection and (num_classes is None or num_logits != 1):
        raise ValueError(
            "projection=True needs num_classes and num_logits=1 (it projects on an embedding of the label)"
        )
    height, width_pixels = int(image_shape[0]), int(image_shape[1])
    images = keras.Input(shape=tuple(image_shape), name="images")
    inputs, h = [images], images
    if num_classes is not None:
        labels = _label_input()
        plane = keras.layers.Embedding(num_classes, height * width_pixels, name="label_embedding")(labels)
        plane = keras.layers.Reshape((height, width_pixels, 1))(plane)
        inputs.append(labels)
        h = keras.layers.Concatenate()([images, plane])
    downsamplings = _resolutions(height, width_pixels)
    for i in range(downsamplings):
        h = keras.layers.Conv2D(width * 2**i, 4, strides=2, padding="same")(h)
        h = keras.layers.LeakyReLU(0.2)(h)
    features = keras.layers.Flatten(name="features")(h)
    logits = keras.layers.Dense(num_logits)(features)
    if projection:
        # An Embedding (not a Dense on one-hot labels) so that per-example clipping has a closed-form rule.
        label_vector = keras.layers.Embedding(num_classes, features.shape[-1], name="label_projection")(inputs[1])
        logits = keras.layers.Add()([logits, keras.layers.Dot(axes=1)([features, label_vector])])
    return keras.Model(_outputs(inputs), logits, name="dcgan_discriminator")


def mlp_generator(*, output_shape, latent_dim=32, num_classes=None, hidden=(128, 128), batch_norm=False):
    """An MLP generator for small or flat data in [0, 1] (e.g. 8x8 digits, feature vectors).

    Args:
        output_shape: shape of one generated example, e.g. (8, 8, 1) or (64,).
        latent_dim: size of the Gaussian latent vector, >= 1.
        num_classes: None, or the number of classes to condition on.
        hidden: widths of the hidden ReLU layers.
        batch_norm: BatchNormalization after the hidden layers.

    Returns:
        A Keras model `latent -> examples` (or `[latent, labels] -> examples`), sigmoid outputs.

    Raises:
        ValueError: for an out-of-range argument.
    """
    _check_num_classes(num_classes)
    _check_positive_int(latent_dim, name="latent_dim")
    inputs, h = _generator_trunk(latent_dim, num_classes, label_embedding=min(latent_dim, 16))
    for units in hidden:
        _check_positive_int(units, name="hidden units")
        h = keras.layers.Dense(units, use_bias=not batch_norm)(h)
        if batch_norm:
            h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h)
    h = keras.layers.Dense(math.prod(output_shape), activation="sigmoid")(h)
    return keras.Model(_outputs(inputs), keras.layers.Reshape(tuple(output_shape))(h), name="mlp_generator")


def mlp_discriminator(*, input_shape, num_classes=None, hidden=(128, 128), num_logits=1, input_noise=0.0,
                      hidden_noise=0.0):
    """An MLP discriminator (LeakyReLU, no normalisation) for small or flat data, one logit out.

    With `input_noise` / `hidden_noise`, Gaussian noise is added (in training only) to the input and to
    every hidden layer's output, the regularisation of Salimans et al.'s (2016) semi-supervised MNIST
    discriminator. The noise is drawn independently for every entry, from a seed generator and not
    from the data, so each example's loss still depends on that example alone.

    Args:
        input_shape: shape of one example, e.g. (8, 8, 1) or (64,).
        num_classes: None, or the number of classes of the labels it receives (embedded and
            concatenated to the flattened example).
        hidden: widths of the hidden layers.
        num_logits: outputs of the last Dense layer, >= 1: 1 for a GAN, K for the K-class discriminator
            of a semi-supervised GAN (`privgan.models.SemiSupervisedGAN`).
        input_noise: standard deviation of the Gaussian noise on the input, >= 0.
        hidden_noise: standard deviation of the Gaussian noise on each hidden layer's output, >= 0.

    Returns:
        A Keras model `examples -> logits (batch, num_logits)` (or `[examples, labels] -> logits`); its
        last hidden layer (the LeakyReLU before the logits) is named "features".

    Raises:
        ValueError: for an out-of-range argument.
    """
    _check_num_classes(num_classes)
    _check_positive_int(num_logits, name="num_logits")
    for name, value in (("input_noise", input_noise), ("hidden_noise", hidden_noise)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    examples = keras.Input(shape=tuple(input_shape), name="examples")
    inputs, h = [examples], keras.layers.Flatten()(examples)
    if input_noise:
        h = keras.layers.GaussianNoise(input_noise)(h)
    if num_classes is not None:
        labels = _label_input()
        inputs.append(labels)
        embedded = keras.layers.Embedding(num_classes, 16, name="label_embedding")(labels)
        h = keras.layers.Concatenate()([h, embedded])
    for index, units in enumerate(hidden):
        _check_positive_int(units, name="hidden units")
        last = index == len(hidden) - 1
        h = keras.layers.LeakyReLU(0.2, name="features" if last else None)(keras.layers.Dense(units)(h))
        if hidden_noise:
            h = keras.layers.GaussianNoise(hidden_noise)(h)
    return keras.Model(_outputs(inputs), keras.layers.Dense(num_logits)(h), name="mlp_discriminator")


def scattering_discriminator(*, input_shape, num_logits, scales=2, orientations=8, groups=27, projection=None,
                             hidden=(), hidden_noise=0.0):
    """A discriminator / classifier on a fixed wavelet-scattering front end (Tramèr & Boneh 2021).

    `Scattering2D` (no weights: its Morlet filters are public) -> GroupNormalization without learnt
    scale or offset (each example normalised on its own, over groups of scattering channels: no batch
    statistics, so no private data enter the normalisation) -> Flatten -> optionally a linear map to
    `projection` dimensions without bias (the layer named "projection", which
    `SemiSupervisedGAN.fit_projection` sets to a PCA whitening from a DP release of the unlabelled
    images) -> `hidden` Dense + LeakyReLU layers -> L2 normalisation to unit norm (the layer named
    "features") -> Dense(num_logits). Only the Dense layers are trainable: few parameters to privatise, on
    features that cost no privacy. The unit norm of the features bounds each labelled example's contribution
    to a class centroid (`SemiSupervisedGAN.fit_centroid_head`) and keeps the logits' scale fixed.

    Args:
        input_shape: (side, side, 1), side a multiple of 2^scales.
        num_logits: outputs of the last Dense layer, >= 1 (K class logits for a semi-supervised GAN).
        scales: J of the scattering transform, >= 1.
        orientations: L of the scattering transform, >= 1.
        groups: groups of the GroupNormalization; must divide the number of scattering channels
            (1 + J L + L^2 J (J - 1) / 2: 81 for J = 2, L = 8).
        projection: None, or the output dimension k >= 1 of the "projection" layer.
        hidden: widths of the trainable hidden layers between the normalised scattering features and
            the unit-norm features (empty: the head is linear in the scattering features).
        hidden_noise: standard deviation of the Gaussian noise on each hidden layer's output in
            training, >= 0 (drawn from a seed generator, not from the data).

    Returns:
        A Keras model `images -> logits (batch, num_logits)` whose layer "features" is the unit-norm
        input of the last layer.

    Raises:
        ValueError: for an out-of-range argument.
    """
    from privgan.models.scattering import Scattering2D

    _check_positive_int(num_logits, name="num_logits")
    if not hidden_noise >= 0:
        raise ValueError(f"hidden_noise must be >= 0, got {hidden_noise}")
    scattering = Scattering2D(scales=scales, orientations=orientations)
    _check_positive_int(groups, name="groups")
    if scattering.channels % groups:
        raise ValueError(f"groups must divide the {scattering.channels} scattering channels, got {groups}")
    images = keras.Input(shape=tuple(input_shape), name="images")
    h = scattering(images)
    h = keras.layers.GroupNormalization(groups=groups, center=False, scale=False)(h)
    h = keras.layers.Flatten()(h)
    if projection is not None:
        _check_positive_int(projection, name="projection")
        h = keras.layers.Dense(projection, use_bias=False, name="projection")(h)
    for units in hidden:
        _check_positive_int(units, name="hidden units")
        h = keras.layers.LeakyReLU(0.2)(keras.layers.Dense(units)(h))
        if hidden_noise:
            h = keras.layers.GaussianNoise(hidden_noise)(h)
    h = keras.layers.UnitNormalization(name="features")(h)
    return keras.Model(images, keras.layers.Dense(num_logits)(h), name="scattering_discriminator")
