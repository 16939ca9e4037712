"""An example third-party denoisekit plugin.

It registers a model built from plain Keras layers. The model has no hand-written
backward pass, so it trains with ``--backprop autodiff`` only; denoisekit refuses
``manual`` and ``dilated`` for it with a clear message. It also adds a command.
"""

import typer

from denoisekit.plugin import TrainableModel, hookimpl


class TinyCNN(TrainableModel):
    name = "example-tiny-cnn"
    description = "Three-layer Keras CNN that predicts the noise (example third-party plugin)"
    options = {"channels": 8, "kernel": 3}

    def build(self, patch_size=None):
        import tensorflow as tf  # inside build, so 'denoisekit models' stays instant

        c, k = self.config["channels"], self.config["kernel"]
        self.net = tf.keras.Sequential([
            tf.keras.Input((None, None, 1)),
            tf.keras.layers.Conv2D(c, k, padding="same", activation="relu"),
            tf.keras.layers.Conv2D(c, k, padding="same", activation="relu"),
            tf.keras.layers.Conv2D(1, k, padding="same"),
        ])
        self.patch_size = patch_size
        self.built = True

    def call(self, x):
        return x - self.net(x)  # residual learning: the network estimates the noise

    @property
    def trainable_variables(self):
        return list(self.net.trainable_variables)


@hookimpl
def register_models(register):
    register(TinyCNN)


@hookimpl
def register_commands(app):
    @app.command(name="example-hello")
    def example_hello(name: str = "world") -> None:
        """Say hello (shows how a plugin adds a command)."""
        typer.echo(f"hello {name}, from denoisekit-example")
