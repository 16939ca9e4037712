"""Built-in models, registered through the denoisekit entry-point group.

The model modules keep TensorFlow imports inside methods, so listing models is instant.
"""

from denoisekit.plugin import hookimpl


@hookimpl
def register_models(register):
    from denoisekit_plugins.models.classical import BM3D, NLMeans, TotalVariation
    from denoisekit_plugins.models.residual import ResidualMul, ResidualMulAdd
    from denoisekit_plugins.models.vanilla_ae import VanillaAE

    for cls in (VanillaAE, ResidualMul, ResidualMulAdd, NLMeans, TotalVariation, BM3D):
        register(cls)
