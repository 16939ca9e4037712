import numpy as np
import pytest

from denoisekit_plugins.noise.projector import get_projector

N, VIEWS = 96, 150


def disc(cx=0.0, cy=0.0, r=30.0, n=N):
    yy, xx = np.mgrid[:n, :n]
    return (((xx - n // 2 - cx) ** 2 + (yy - n // 2 - cy) ** 2) < r**2).astype(np.float32)


def test_detector_covers_the_diagonal_and_central_ray_is_the_chord():
    proj = get_projector(N, VIEWS)
    assert proj.bins >= N * np.sqrt(2)
    sino = proj.forward(disc()[None])[0]
    centre = sino[:, proj.bins // 2]
    assert centre.mean() == pytest.approx(60.0, rel=0.01)  # chord 2r through a unit disc
    assert np.abs(sino[:, :3]).max() < 0.05 and np.abs(sino[:, -3:]).max() < 0.05  # FOV edges


def test_projection_geometry_follows_the_angle():
    proj = get_projector(N, VIEWS)
    sino = proj.forward(disc(cx=20.0, r=8.0)[None])[0]
    s = np.arange(proj.bins) - proj.bins // 2
    for view in (0, VIEWS // 4, VIEWS // 2):
        p = sino[view]
        theta = proj.theta[view]
        assert (p * s).sum() / p.sum() == pytest.approx(20.0 * np.cos(theta), abs=0.5)
        assert p.sum() == pytest.approx(disc(cx=20.0, r=8.0).sum(), rel=0.01)  # mass kept


def test_fbp_inverts_the_projection():
    proj = get_projector(N, VIEWS)
    image = disc(cx=5.0, cy=-7.0, r=25.0)
    recon = proj.fbp(proj.forward(image[None]), "ram-lak")[0]
    inside = disc(cx=5.0, cy=-7.0, r=20.0) > 0
    outside = disc(cx=5.0, cy=-7.0, r=31.0) == 0
    assert recon[inside].mean() == pytest.approx(1.0, abs=0.01)
    assert np.abs(recon[outside]).mean() < 0.01


def test_fbp_of_white_sinogram_noise_has_the_theoretical_variance():
    # var = (pi / views)^2 * views * sum(h^2), with sum(h^2) = int |k|^2 dk = 1/12 (ram-lak)
    proj = get_projector(N, VIEWS)
    noise = np.random.default_rng(0).standard_normal((3, VIEWS, proj.bins)).astype(np.float32)
    recon = proj.fbp(noise, "ram-lak")[:, 24:72, 24:72]
    assert recon.std() == pytest.approx(np.sqrt(np.pi**2 / VIEWS / 12), rel=0.05)
    assert proj.fbp(noise, "hann").std() < 0.6 * recon.std()  # apodisation smooths


def test_unknown_filter_is_refused():
    proj = get_projector(N, VIEWS)
    with pytest.raises(ValueError, match="unknown filter"):
        proj.fbp(np.zeros((1, VIEWS, proj.bins), np.float32), "box")
