"""Figures for docs/noise.md: a real CT slice, clean / noisy / noise, for each noise kind.

    python examples/noise_figure.py [--out docs/img]

Uses the 512 x 512 slice 693_UNCR.dcm from pydicom-data (read with pydicom, rescaled to
HU) and the registered noise kinds through ``denoisekit.noise.add_noise``, seed 0.
Writes noise_<name>.png and noise_spectra.png (radially averaged noise power spectra,
seeds 0-3).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

RUNS = [
    ("gaussian", "gaussian, sigma=25 HU", {"sigma": 25.0}),
    ("gaussian-relative", "gaussian, relative=0.3 (the articles' form)", {"relative": 0.3}),
    ("poisson", "poisson, photons=1000", {}),
    ("lowdose", "lowdose, dose=0.25 (defaults)", {"dose": 0.25}),
    ("lowdose-10", "lowdose, dose=0.10", {"dose": 0.10}),
]


def real_slice():
    """The pydicom-data 693 CT slice as a Volume in HU."""
    import pydicom
    from pydicom.data import get_testdata_file

    from denoisekit.volume import Volume

    ds = pydicom.dcmread(get_testdata_file("693_UNCR.dcm"))
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    hu = np.maximum(hu, -1024.0)  # outside the scan circle the file stores -3024
    sx, sy = (float(v) for v in ds.PixelSpacing)
    return Volume(hu[None], spacing=(sy, sx, float(ds.SliceThickness)))


def radial_nps(noise: np.ndarray, roi: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged noise power of a central ROI (Hann-windowed), frequency in cycles/pixel."""
    c = noise.shape[-1] // 2
    patch = noise[c - roi // 2 : c + roi // 2, c - roi // 2 : c + roi // 2]
    w = np.hanning(roi)
    spec = np.abs(np.fft.fftshift(np.fft.fft2((patch - patch.mean()) * np.outer(w, w)))) ** 2
    f = np.fft.fftshift(np.fft.fftfreq(roi))
    r = np.hypot(*np.meshgrid(f, f))
    edges = np.linspace(0, 0.5, 26)
    power = np.array([spec[(r >= lo) & (r < hi)].mean() for lo, hi in zip(edges[:-1], edges[1:])])
    return (edges[:-1] + edges[1:]) / 2, power / power.max()


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from denoisekit.noise import add_noise

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    clean = real_slice()
    spectra = {}
    for name, title, options in RUNS:
        kind = name.split("-")[0]
        noisy, _ = add_noise(clean, kind, seed=0, **options)
        noise = noisy.array[0] - clean.array[0]
        # Spectra averaged over a few seeds: one ROI's spectrum is itself noisy.
        runs = [noise] + [add_noise(clean, kind, seed=s, **options)[0].array[0] - clean.array[0] for s in (1, 2, 3)]
        nps = [radial_nps(n) for n in runs]
        spectra[name] = (nps[0][0], np.mean([p for _, p in nps], axis=0))
        fig, axes = plt.subplots(1, 3, figsize=(9, 3.3), dpi=72)
        panels = [
            (clean.array[0], "clean (W400 L40)", dict(cmap="gray", vmin=-160, vmax=240)),
            (noisy.array[0], "noisy (W400 L40)", dict(cmap="gray", vmin=-160, vmax=240)),
            (noise, f"noise, std {noise[156:356, 156:356].std():.0f} HU in the centre (+-100 HU)",
             dict(cmap="gray", vmin=-100, vmax=100)),
        ]
        for ax, (image, label, style) in zip(axes, panels):
            ax.imshow(image[64:448, 64:448], **style)
            ax.set_title(label, fontsize=8)
            ax.axis("off")
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        path = args.out / f"noise_{name}.png"
        fig.savefig(path)
        plt.close(fig)
        print(f"wrote {path} ({path.stat().st_size // 1024} kB)")

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=90)
    for (name, (f, p)), style in zip(spectra.items(), ["-", ":", "-", "-", "--"]):
        ax.plot(f, p / p.max(), style, label=name)
    ax.set_xlabel("radial frequency (cycles per pixel)")
    ax.set_ylabel("noise power (normalised)")
    ax.set_title("noise power spectra, central 128 x 128 ROI", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = args.out / "noise_spectra.png"
    fig.savefig(path)
    print(f"wrote {path} ({path.stat().st_size // 1024} kB)")


if __name__ == "__main__":
    main()
