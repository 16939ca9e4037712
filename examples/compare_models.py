"""Train every built-in model x backprop rule on the embedded chest phantom with one fixed
budget and print the markdown table of docs/models.md's "Results" section.

    python examples/compare_models.py                      # the budget the docs quote
    python examples/compare_models.py --steps 60 --steps-per-epoch 20   # a quick look

Every combination sees the same data, noise realisations, seed and number of steps; the
numbers are validation PSNR/SSIM in HU (window -1000..1000) on held-out slices, at the
best epoch, next to the noisy input's. Runs are kept under --runs for inspection.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


MODELS = ("residual-mul", "residual-mul-add", "vanilla-ae")
RULES = ("autodiff", "manual", "dilated")


def replace_section(text: str, table: str, section: str = "") -> str:
    """``text`` with the block between ``<!-- RESULTS[:section] ... -->`` and
    ``<!-- /RESULTS[:section] -->`` replaced by ``table``; one file can hold several tables
    (e.g. a longer budget for one model) and the prose around them survives a rerun."""
    name = f"RESULTS:{section}" if section else "RESULTS"
    begin, end = f"<!-- {name} ", f"<!-- /{name} -->"
    start = text.find(begin)
    if start < 0 or text.find(end, start) < 0:
        raise SystemExit(f"no '{begin}...-->' ... '{end}' block to fill")
    start = text.index("-->", start) + 3
    return text[:start] + "\n" + table + "\n" + text[text.index(end, start):]


def cached(noise):
    """Make ``noise.apply`` remember its results: all combinations draw the same
    parameters for the same slices, and projection-domain noise is the slow part."""
    memo = {}
    apply = noise.apply

    def apply_once(hu, params, spacing=(1.0, 1.0, 1.0)):
        digest = hashlib.sha1(np.ascontiguousarray(hu).tobytes()).hexdigest()
        key = (json.dumps(params, sort_keys=True, default=str), digest, tuple(spacing))
        if key not in memo:
            memo[key] = apply(hu, params, spacing)
        return memo[key]

    noise.apply = apply_once
    return noise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600, help="training steps per combination")
    ap.add_argument("--steps-per-epoch", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch-size", type=int, help="default: each model's own (64; vanilla-ae 16)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay", default="cosine")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", default="mixed")
    ap.add_argument("--dose", type=float, default=0.25)
    ap.add_argument("--realisations", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--write", type=Path, help="also fill this markdown file's (docs/models.md) "
                    "<!-- RESULTS --> ... <!-- /RESULTS --> block with the table")
    ap.add_argument("--section", default="", help="with --write: fill the <!-- RESULTS:SECTION --> block "
                    "instead of the main one")
    ap.add_argument("--runs", type=Path, default=Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
    args = ap.parse_args(argv)

    from denoisekit.plugins import get_backprop, get_model, get_noise
    from denoisekit.samples import load_sample
    from denoisekit.train import train

    volume = load_sample("chest-phantom")
    noise_cls = get_noise(args.noise)
    noise = cached(noise_cls(**({"dose": args.dose} if "dose" in noise_cls.options else {})))
    rows = []
    for model in args.models.split(","):
        for rule in args.rules.split(","):
            print(f"training {model} with {rule} ...", file=sys.stderr, flush=True)
            patch = args.patch_size or get_model(model).default_patch_size
            res = train(
                [volume], get_model(model)(), get_backprop(rule)(), noise,
                run_dir=args.runs / f"{model}-{rule}", steps=args.steps,
                steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
                patch_size=patch, lr=args.lr, lr_decay=args.lr_decay, seed=args.seed,
                realisations=args.realisations, sources=["sample:chest-phantom"],
            )
            s = res.summary()
            rows.append((model, rule, patch, s))
            print(f"  best PSNR {s['best']['psnr']:.2f} dB at epoch {s['best']['epoch']}, "
                  f"{s['seconds']:.0f} s", file=sys.stderr, flush=True)

    out = io.StringIO()
    command = "python examples/compare_models.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"Made by `{command.strip()}` ({time.strftime('%Y-%m-%d')}, 2-core CPU). "
          f"Budget: {args.steps} steps of {args.batch_size} patches (each model's patch size), "
          f"Adam lr {args.lr:g} ({args.lr_decay}), seed {args.seed}, {args.noise} noise"
          + (f" at dose {args.dose:g}" if "dose" in noise_cls.options else "")
          + ", on the embedded chest phantom; validation on held-out slices cut into tiles of the "
          "patch size (window -1000..1000 HU), next to the noisy input on the same tiles.\n", file=out)
    print("| model | rule | patch | noisy PSNR (dB) | PSNR before (dB) | best PSNR (dB) | best SSIM (noisy) | best epoch | time (s) |", file=out)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|", file=out)
    for model, rule, patch, s in rows:
        print(f"| {model} | {rule} | {patch} | {s['noisy']['psnr']:.2f} | {s['initial']['psnr']:.2f} | {s['best']['psnr']:.2f} | "
              f"{s['best']['ssim']:.4f} ({s['noisy']['ssim']:.4f}) | {s['best']['epoch']} | {s['seconds']:.0f} |", file=out)
    table = out.getvalue()
    print(table, end="")
    if args.write is not None:
        args.write.write_text(replace_section(args.write.read_text(), table, args.section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
