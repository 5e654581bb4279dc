"""What privgan's GANs share as Keras models: two optimizers, no saved compile state, loss trackers by name."""

import keras


class GANModel(keras.Model):
    """A Keras model holding a discriminator D and a generator G, each with its own optimizer (a base class).

    A subclass lists its mean-loss metrics in `loss_metrics` and calls `_add_loss_trackers()` in `__init__`:
    each name becomes a `keras.metrics.Mean` in the attribute `<name>_tracker` (the names saved models
    use), and `metrics` lists them in that order, so that Keras resets them every epoch.
    """

    loss_metrics = ()

    def _add_loss_trackers(self):
        for name in self.loss_metrics:
            setattr(self, f"{name}_tracker", keras.metrics.Mean(name=name))

    @property
    def metrics(self):
        return [getattr(self, f"{name}_tracker") for name in self.loss_metrics]

    def compile(self, d_optimizer="adam", g_optimizer="adam", **kwargs):
        """Sets the optimizers of D and G.

        Args:
            d_optimizer: a Keras optimizer (or its name) for the discriminator.
            g_optimizer: a Keras optimizer (or its name) for the generator.
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`, `run_eagerly`).
        """
        super().compile(**kwargs)
        self.d_optimizer = keras.optimizers.get(d_optimizer)
        self.g_optimizer = keras.optimizers.get(g_optimizer)

    def get_compile_config(self):
        # The optimizers' state is not part of a saved GAN: compile again after `keras.models.load_model`.
        return {}
