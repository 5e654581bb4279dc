"""Recording a DP step's forward pass must not catch layer calls made by other threads meanwhile."""

import threading

import keras
import numpy as np
import tensorflow as tf

from privgan.dp.clipping import clipped_gradient_sum

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
WAIT_S = 30


class PausingDense(keras.layers.Dense):
    """A Dense layer that, while `pause` is set, runs it from the thread tracing it (mid-call)."""

    pause = None

    def call(self, inputs):
        if self.pause is not None and threading.current_thread() is threading.main_thread():
            self.pause()
        return super().call(inputs)


def test_another_threads_layer_calls_during_a_dp_trace_are_not_recorded():
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((4,)), PausingDense(3)])
    dense = model.layers[0]
    x = tf.constant(rng.normal(size=(6, 4)), tf.float32)
    y = tf.constant(rng.integers(0, 3, size=6))
    other = tf.constant(rng.normal(size=(2, 4)), tf.float32)

    @tf.function
    def step(batch):
        inputs, labels = batch
        return clipped_gradient_sum(lambda b: SCE(b[1], model(b[0])), model.trainable_variables, (inputs, labels),
                                    l2_norm_clip=0.5)[0]

    expected = [g.numpy() for g in clipped_gradient_sum(
        lambda b: SCE(b[1], model(b[0])), model.trainable_variables, (x, y), l2_norm_clip=0.5)[0]]

    started, done, seen = threading.Event(), threading.Event(), {}

    def other_thread():
        started.wait(WAIT_S)
        try:
            # The private layer itself, mid-call in the trace, and a layer the recorder would refuse.
            seen["dense"] = dense(other).numpy()
            seen["batch_norm"] = keras.layers.BatchNormalization()(other, training=True).numpy()
        except Exception as error:  # reported by the assertion below
            seen["error"] = error
        finally:
            done.set()

    def pause():
        started.set()
        assert done.wait(WAIT_S), "the other thread did not finish its layer calls"

    worker = threading.Thread(target=other_thread)
    worker.start()
    dense.pause = pause
    try:
        result = step((x, y))
    finally:
        dense.pause = None
        started.set()
        worker.join(WAIT_S)

    assert "error" not in seen, seen.get("error")
    np.testing.assert_allclose(seen["dense"], other.numpy() @ dense.kernel.numpy() + dense.bias.numpy(), rtol=1e-5)
    for got, want in zip(result, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-7)
