"""Benchmark the lowdose noise kind on a 512 x 512 x 100 body phantom (dose 0.25).

    python examples/bench_noise.py [--slices 100] [--size 512] [--repeats 3]

Prints the time to build the projector once (cached afterwards for the process) and the
median wall time of ``add_noise`` over the repeats (the issue's goal: under 60 s), then
the noise level of the default flux in the embedded chest phantom at full, quarter and
sixteenth dose, and what tube-current modulation (``aec``) does to the thick body and the chest.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from denoisekit.noise import add_noise
from denoisekit.volume import Volume


def body_phantom(size: int, slices: int) -> Volume:
    """A 34 x 25 cm water body with spine and ribs-like bone, in HU, 0.7 mm pixels at 512."""
    pixel = 358.0 / size
    yy, xx = np.mgrid[:size, :size]
    x, y = (xx - size / 2) * pixel, (yy - size / 2) * pixel
    hu = np.full((size, size), -1000.0, np.float32)
    hu[(x / 170) ** 2 + (y / 125) ** 2 < 1] = 40.0
    hu[(x / 150) ** 2 + (y / 105) ** 2 < 1] = 55.0
    hu[x**2 + (y - 70) ** 2 < 18**2] = 900.0
    return Volume(np.repeat(hu[None], slices, axis=0), spacing=(pixel, pixel, 2.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dose", type=float, default=0.25)
    args = parser.parse_args()

    from denoisekit_plugins.noise.lowdose import LowDose
    from denoisekit_plugins.noise.projector import get_projector

    volume = body_phantom(args.size, args.slices)
    start = time.perf_counter()
    get_projector(args.size, LowDose.options["views"])
    build = time.perf_counter() - start
    times = []
    for seed in range(args.repeats):
        start = time.perf_counter()
        noisy, _ = add_noise(volume, "lowdose", seed=seed, dose=args.dose)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    centre = (noisy.array - volume.array)[:, args.size // 2 - 20 : args.size // 2 + 20, args.size // 2 - 20 : args.size // 2 + 20]
    print(f"lowdose dose={args.dose} on {args.size}x{args.size}x{args.slices}: projector build {build:.2f} s (once)")
    print(f"runs: {', '.join(f'{t:.2f}' for t in times)} s; median {median:.2f} s "
          f"({1000 * median / args.slices:.0f} ms per slice); centre noise std {centre.std():.1f} HU")
    chest_levels()
    aec_levels(args.size, args.dose)


def aec_levels(size: int, dose: float) -> None:
    """Centre noise of the thick body and soft-tissue noise of the chest phantom per ``aec``."""
    from denoisekit.samples import load_sample

    body = body_phantom(size, 2)
    chest = load_sample("chest-phantom", slices=2)
    soft = (chest.array > -200) & (chest.array < 200)
    c = slice(size // 2 - 20, size // 2 + 20)
    for aec in ("off", "z", "angle", "z+angle"):
        b = add_noise(body, "lowdose", seed=0, dose=dose, aec=aec)[0].array - body.array
        ch = add_noise(chest, "lowdose", seed=0, dose=dose, aec=aec)[0].array - chest.array
        print(f"aec={aec} dose={dose:g}: 34 x 25 cm body centre std {b[:, c, c].std():.1f} HU, "
              f"chest phantom soft tissue std {ch[soft].std():.1f} HU")


def chest_levels() -> None:
    """Noise std in the soft tissue (-200..200 HU) and lungs of the embedded chest phantom."""
    from denoisekit.samples import load_sample

    chest = load_sample("chest-phantom", slices=2)
    soft = (chest.array > -200) & (chest.array < 200)
    lung = (chest.array > -900) & (chest.array < -700)
    for dose in (1.0, 0.25, 1 / 16):
        noise = add_noise(chest, "lowdose", seed=0, dose=dose)[0].array - chest.array
        print(f"chest phantom dose={dose:g}: soft tissue std {noise[soft].std():.1f} HU, "
              f"lung std {noise[lung].std():.1f} HU, mean {noise[soft].mean():+.2f} HU")


if __name__ == "__main__":
    main()
