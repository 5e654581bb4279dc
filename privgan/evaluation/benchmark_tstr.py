"""TSTR the way DPImageBench (Gong et al., CCS 2025) measures it, so that numbers compare like with like.

Their protocol for 28x28 grey-scale sets (read from their evaluator, written here from that description):
the synthetic set is shuffled with a fixed seed and split into a training part and a validation part
(55,000 / 5,000 of 60,000 images: the last 1/12 here, whatever the size); pixels are mapped to [-1, 1];
each classifier (a CIFAR-style ResNet, depth 6n + 2 with basic blocks, 16/32/64 channels, their default
depth 110; a Wide ResNet, depth 6n + 4, widen factor k, dropout 0.3, their default WRN-40-4; and a
ResNeXt, not implemented here) is trained with Adam (learning rate 0.01, divided by 5 every 20 of 50
epochs), batch 256, and evaluated with an exponential moving average of its weights (decay
min(0.9999, (1 + t) / (10 + t)) after t updates). After every epoch the EMA weights are measured on the
SYNTHETIC validation part; the reported accuracy is the real test accuracy at the epoch of the best
synthetic-validation accuracy (later epochs win ties), averaged over the classifiers. The real test
split is never used for selection.

Their schedule (50 epochs of a 110-layer ResNet) is GPU work. `epochs` and the depths can be shortened;
the learning-rate step is then kept at the same fraction of the schedule (2/5), and the result records
what was run, so that a shortened number is never passed off as theirs.
"""

import dataclasses
import math

import keras
import numpy as np

CLASSIFIERS = ("resnet", "wrn")
_FULL_EPOCHS = 50
_STEP_FRACTION = 20 / 50


@dataclasses.dataclass(frozen=True)
class BenchmarkTSTRResult:
    """DPImageBench-style TSTR.

    Attributes:
        accuracy: mean over the classifiers of the real test accuracy at the best synthetic-validation epoch.
        per_classifier: {name: {"test_accuracy", "validation_accuracy", "best_epoch", "depth",
            "validation_history" (the synthetic-validation accuracy after each epoch)}}.
        epochs: epochs each classifier was trained (50 in DPImageBench).
        num_train: synthetic images trained on.
        num_validation: synthetic images used for the model selection.
    """

    accuracy: float
    per_classifier: dict
    epochs: int
    num_train: int
    num_validation: int

    def __post_init__(self):
        if not 0.0 <= self.accuracy <= 1.0:
            raise ValueError(f"accuracy must be in [0, 1], got {self.accuracy}")

    def to_dict(self):
        return {"benchmark_tstr_accuracy": self.accuracy, "benchmark_tstr": dataclasses.asdict(self),
                "benchmark_tstr_shortened": self.epochs < _FULL_EPOCHS}


def _residual_unit(x, filters, stride):
    """ResNet basic block (post-activation, as in the CIFAR ResNet): conv-BN-ReLU-conv-BN + shortcut, ReLU."""
    shortcut = x
    out = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    out = keras.layers.ReLU()(keras.layers.BatchNormalization()(out))
    out = keras.layers.BatchNormalization()(keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(out))
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
        shortcut = keras.layers.BatchNormalization()(shortcut)
    return keras.layers.ReLU()(keras.layers.Add()([out, shortcut]))


def _wide_unit(x, filters, stride, dropout):
    """Wide ResNet block (pre-activation): BN-ReLU-conv-BN-ReLU-dropout-conv + shortcut."""
    activated = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    equal = x.shape[-1] == filters and stride == 1
    out = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(activated)
    out = keras.layers.ReLU()(keras.layers.BatchNormalization()(out))
    if dropout:
        out = keras.layers.Dropout(dropout)(out)
    out = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(out)
    shortcut = x if equal else keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False)(activated)
    return keras.layers.Add()([out, shortcut])


def benchmark_classifier(name, *, input_shape, num_classes, depth=None, widen_factor=4, dropout=0.3):
    """DPImageBench's ResNet (depth 6n + 2, default 110) or Wide ResNet (depth 6n + 4, default 40).

    Args:
        name: "resnet" or "wrn".
        input_shape: (side, side, channels), side a multiple of 4.
        num_classes: number of classes, >= 2.
        depth: network depth; None for DPImageBench's default (110 / 40).
        widen_factor: k of the Wide ResNet.
        dropout: dropout rate of the Wide ResNet.

    Returns:
        An uncompiled Keras model emitting logits.
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"name must be one of {CLASSIFIERS}, got {name!r}")
    depth = (110 if name == "resnet" else 40) if depth is None else int(depth)
    offset = 2 if name == "resnet" else 4
    if depth < 6 + offset or (depth - offset) % 6:
        raise ValueError(f"depth of the {name} must be 6n + {offset} with n >= 1, got {depth}")
    blocks = (depth - offset) // 6
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    if name == "resnet":
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            if name == "resnet":
                x = _residual_unit(x, filters, stride)
            else:
                x = _wide_unit(x, filters * widen_factor, stride, dropout)
    if name == "wrn":
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x), name=f"{name}{depth}")


class _AveragedSelection(keras.callbacks.Callback):
    """Keeps the EMA of the trainable weights; after each epoch, scores the EMA weights on the synthetic
    validation part and the real test split, and remembers the test accuracy of the best validation epoch."""

    def __init__(self, validation, test):
        super().__init__()
        self.validation, self.test = validation, test
        self.best = (-1.0, None, -1)
        self.history = []

    def on_train_begin(self, logs=None):
        self.updates = 0
        self.average = [keras.ops.convert_to_numpy(v).copy() for v in self.model.trainable_variables]

    def on_train_batch_end(self, batch, logs=None):
        self.updates += 1
        decay = min(0.9999, (1 + self.updates) / (10 + self.updates))
        for average, variable in zip(self.average, self.model.trainable_variables):
            average += (1.0 - decay) * (keras.ops.convert_to_numpy(variable) - average)

    def _accuracy(self, x, y):
        logits = self.model.predict(x, batch_size=1000, verbose=0)
        return float(np.mean(np.argmax(logits, axis=1) == y))

    def on_epoch_end(self, epoch, logs=None):
        live = [keras.ops.convert_to_numpy(v).copy() for v in self.model.trainable_variables]
        for variable, average in zip(self.model.trainable_variables, self.average):
            variable.assign(average)
        validation, test = self._accuracy(*self.validation), self._accuracy(*self.test)
        for variable, value in zip(self.model.trainable_variables, live):
            variable.assign(value)
        self.history.append(validation)
        if validation >= self.best[0]:
            self.best = (validation, test, epoch + 1)


def benchmark_tstr(x_synthetic, y_synthetic, x_test, y_test, *, num_classes, classifiers=CLASSIFIERS, epochs=50,
                   depths=None, batch_size=256, seed=0, verbose=0):
    """DPImageBench's TSTR: classifiers trained on synthetic images, selected on a synthetic validation part.

    Args:
        x_synthetic: synthetic images (N, side, side, channels) in [0, 1].
        y_synthetic: their integer labels.
        x_test: real test images in [0, 1] (only measured, never used for selection).
        y_test: real test labels.
        num_classes: number of classes, >= 2.
        classifiers: names from `CLASSIFIERS`.
        epochs: training epochs, >= 1 (50 in DPImageBench; fewer is a shortened schedule).
        depths: {name: depth} overrides of the default depths (110 / 40), e.g. for a CPU.
        batch_size: training batch size (256 in DPImageBench).
        seed: seed of the initialisation and shuffling (the split itself uses DPImageBench's fixed seed 0).
        verbose: Keras verbosity.

    Returns:
        A `BenchmarkTSTRResult`.

    Raises:
        ValueError: for fewer than 24 synthetic images, bad labels, an unknown classifier or bad epochs.
    """
    x_synthetic = np.asarray(x_synthetic, np.float32)
    y_synthetic = np.asarray(y_synthetic, np.int64)
    if len(x_synthetic) < 24 or len(x_synthetic) != len(y_synthetic):
        raise ValueError(f"x_synthetic needs >= 24 images with one label each, got {len(x_synthetic)} images and "
                         f"{len(y_synthetic)} labels")
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs}")
    unknown = sorted(set(classifiers) - set(CLASSIFIERS))
    if unknown or not classifiers:
        raise ValueError(f"classifiers must be a non-empty subset of {CLASSIFIERS}, got {list(classifiers)}")
    depths = dict(depths or {})
    order = np.random.default_rng(0).permutation(len(x_synthetic))
    num_validation = max(1, len(x_synthetic) // 12)  # 5,000 of 60,000 in DPImageBench
    train, validation = order[:-num_validation], order[-num_validation:]
    scaled = 2.0 * x_synthetic - 1.0
    test = (2.0 * np.asarray(x_test, np.float32) - 1.0, np.asarray(y_test))
    steps_per_epoch = math.ceil(len(train) / batch_size)
    step_epochs = max(1, round(_STEP_FRACTION * epochs))
    per_classifier = {}
    for name in classifiers:
        keras.utils.set_random_seed(seed)
        model = benchmark_classifier(name, input_shape=x_synthetic.shape[1:], num_classes=num_classes,
                                     depth=depths.get(name))
        schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=step_epochs * steps_per_epoch,
                                                               decay_rate=0.2, staircase=True)
        model.compile(optimizer=keras.optimizers.Adam(schedule),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        selection = _AveragedSelection((scaled[validation], y_synthetic[validation]), test)
        model.fit(scaled[train], y_synthetic[train], epochs=int(epochs), batch_size=batch_size, shuffle=True,
                  callbacks=[selection], verbose=verbose)
        validation_accuracy, test_accuracy, best_epoch = selection.best
        per_classifier[name] = {"test_accuracy": test_accuracy, "validation_accuracy": validation_accuracy,
                                "best_epoch": best_epoch, "depth": int(model.name[len(name):]),
                                "validation_history": selection.history}
    accuracy = float(np.mean([entry["test_accuracy"] for entry in per_classifier.values()]))
    return BenchmarkTSTRResult(accuracy=accuracy, per_classifier=per_classifier, epochs=int(epochs),
                               num_train=len(train), num_validation=num_validation)
