"""Built-in noise, registered through the denoisekit entry-point group."""

from denoisekit.plugin import hookimpl


@hookimpl
def register_noise(register):
    from denoisekit_plugins.noise.gaussian import Gaussian
    from denoisekit_plugins.noise.lowdose import LowDose
    from denoisekit_plugins.noise.mixed import Mixed
    from denoisekit_plugins.noise.poisson import Poisson

    register(Gaussian)
    register(Poisson)
    register(LowDose)
    register(Mixed)
