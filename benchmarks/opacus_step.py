"""Opacus's DP-SGD step on the architectures of `benchmarks.dp_step`, for the comparison there.

Each case is rebuilt in PyTorch with the same layers and shapes (a 4x4 stride-2 convolution with
padding 1 gives Keras's "same" output size on 28x28), and Opacus makes it private in two ways: its
default per-sample gradients from hooks ("hooks") and its ghost clipping ("ghost", norms without
per-sample gradients, Opacus >= 1.5). Both steps clip at C = 1, add noise with sigma = 1 and apply
Adam, as privgan's benchmarked step does. Importing this module needs torch and opacus; `dp_step`
skips the comparison when they are missing.
"""

import os
import warnings

# PyTorch's OpenMP threads spin while they wait; on a loaded machine a spinning thread that loses its
# core stalls every parallel region (measured here: 260 ms instead of 15 ms for the MLP's backward).
# Waiting passively keeps the comparison fair under load; it must be set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import opacus  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

MODES = ("hooks", "ghost")

# PyTorch warns at every backward through a model whose input needs no gradient (the data): noise here.
warnings.filterwarnings("ignore", message="Full backward hook is firing")


def _discriminator():
    return nn.Sequential(
        nn.Conv2d(1, 64, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(128 * 7 * 7, 1),
    )


def _mlp():
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


# The PyTorch twin of each `benchmarks.dp_step` case's model, with its input shape (channels first).
BUILDERS = {
    "dcgan_discriminator": (_discriminator, (1, 28, 28)),
    "dcgan_discriminator_256": (_discriminator, (1, 28, 28)),
    "mlp": (_mlp, (784,)),
}


def opacus_step(case, *, mode, batch_size, num_classes, threads):
    """A function that takes one Opacus DP-SGD step (forward, backward, clip, noise, Adam) on a fixed batch.

    Args:
        case: a key of `BUILDERS`.
        mode: "hooks" or "ghost".
        batch_size: rows of the batch.
        num_classes: 1 for a binary logit (BCE loss), else the number of classes (cross-entropy).
        threads: PyTorch's intra-op threads (match TensorFlow's for a fair comparison).

    Returns:
        A function of no arguments running one step and returning the loss as a float.

    Raises:
        ValueError: for an unknown case or mode.
    """
    if case not in BUILDERS:
        raise ValueError(f"case must be one of {sorted(BUILDERS)}, got {case!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    builder, input_shape = BUILDERS[case]
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(batch_size, *input_shape)).astype("float32"))
    if num_classes == 1:
        y = torch.from_numpy(rng.integers(0, 2, (batch_size, 1)).astype("float32"))
        criterion = nn.BCEWithLogitsLoss()
    else:
        y = torch.from_numpy(rng.integers(0, num_classes, batch_size))
        criterion = nn.CrossEntropyLoss()
    model = builder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    # make_private reads the batch size and the dataset size from a loader; the step uses (x, y) directly.
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # secure-RNG and accountant notices
        private = opacus.PrivacyEngine().make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=1.0, max_grad_norm=1.0,
            poisson_sampling=False, grad_sample_mode=mode, **({"criterion": criterion} if mode == "ghost" else {}),
        )
    if mode == "ghost":
        model, optimizer, criterion, _ = private
    else:
        model, optimizer, _ = private

    def step():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return float(loss.item())

    return step
