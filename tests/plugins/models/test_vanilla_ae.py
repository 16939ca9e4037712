"""vanilla-ae: shapes through the encoder/decoder, fixed patch size, the article's options."""

import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit_plugins.models.vanilla_ae import VanillaAE

tf = pytest.importorskip("tensorflow")


def test_shapes_through_the_layers(article_depth):
    model = VanillaAE(channels=4, latent=32, **article_depth)
    model.build(32)
    assert model.patch_size == 32
    h, x = tf.random.uniform([3, 32, 32, 1]), None
    shapes = []
    for layer in model.layers:
        h, _ = layer.forward(h, x)
        shapes.append(tuple(h.shape))
    assert shapes == [(3, 16, 16, 4), (3, 8, 8, 4), (3, 4, 4, 4), (3, 32), (3, 4, 4, 4),
                      (3, 8, 8, 4), (3, 16, 16, 4), (3, 32, 32, 1)]
    y = model.call(tf.random.uniform([2, 32, 32, 1])).numpy()
    assert ((y > 0) & (y < 1)).all()  # sigmoid output


def test_depth_is_the_number_of_encoder_kernels():
    model = VanillaAE(channels=3, latent=10, kernels=(5, 3), activations=("tanh",) * 5 + ("linear",))
    model.build(12)
    h = tf.random.uniform([2, 12, 12, 1])
    shapes = []
    for layer in model.layers:
        h, _ = layer.forward(h, None)
        shapes.append(tuple(h.shape))
    assert shapes == [(2, 6, 6, 3), (2, 3, 3, 3), (2, 10), (2, 3, 3, 3), (2, 6, 6, 3), (2, 12, 12, 1)]
    with pytest.raises(DenoiseKitError, match="divisible by 4, got 10"):
        VanillaAE(kernels=(5, 3), activations=("tanh",) * 6).build(10)
    with pytest.raises(DenoiseKitError, match="activations needs 6 names"):
        VanillaAE(kernels=(5, 3)).build(16)
    with pytest.raises(DenoiseKitError, match="at least one"):
        VanillaAE(kernels=(), activations=("tanh", "tanh")).build(16)


def test_default_patch_is_16_and_patch_must_divide_by_the_pooling(article_depth):
    model = VanillaAE()
    model.build()
    assert model.patch_size == 16 == VanillaAE.default_patch_size
    with pytest.raises(DenoiseKitError, match="divisible by 2"):
        VanillaAE().build(15)
    with pytest.raises(DenoiseKitError, match="divisible by 8"):
        VanillaAE(**article_depth).build(36)


def test_articles_values_are_reachable():
    model = VanillaAE.from_strings(["channels=1", "latent=1000", "bias=false", "init=normal", "kernels=7,5,3",
                                    "activations=relu,relu,relu,relu,relu,relu,relu,sigmoid"])
    model.build(64)
    assert [tuple(v.shape) for v in model.trainable_variables] == [
        (7, 7, 1, 1), (5, 5, 1, 1), (3, 3, 1, 1), (64, 1000), (1000, 64), (3, 3, 1, 1), (5, 5, 1, 1), (7, 7, 1, 1)
    ]
    assert np.std(model.trainable_variables[3].numpy()) == pytest.approx(1.0, rel=0.05)


def test_denoise_works_in_hu_on_patches(article_depth):
    model = VanillaAE(channels=2, latent=16, **article_depth)  # sigmoid output: bounded HU
    model.build(16)
    out = model.denoise(np.full((2, 16, 16), 40.0, np.float32))
    assert out.shape == (2, 16, 16) and out.dtype == np.float32
    assert (out > -1024).all() and (out < 3072).all()


def test_scale_maps_the_ct_range_onto_the_sigmoid_range():
    model = VanillaAE()
    hu = np.array([-2000.0, -1024.0, 0.0, 3072.0, 5000.0], np.float32)
    np.testing.assert_allclose(model.scale(hu), [0.0, 0.0, 0.25, 1.0, 1.0])
    np.testing.assert_allclose(model.unscale(model.scale(hu[1:4])), hu[1:4])


def test_listing_models_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from denoisekit.plugins import get_models; get_models(); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
