"""The demo: the whole pipeline on the embedded sample, as a plain function.

Simulate a quarter-dose scan of the chest phantom, denoise it with the default pretrained
model and a classical baseline, and score both against the clean phantom. Writing files is
the CLI's job; this returns the volumes and the scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from denoisekit.volume import Volume

SAMPLE = "chest-phantom"
DOSE = 0.25
BASELINE = "tv"


@dataclass
class DemoResult:
    clean: Volume
    noisy: Volume
    noise_params: dict[str, Any]
    denoised: dict[str, Volume] = field(default_factory=dict)  # model name -> volume
    seconds: dict[str, float] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)  # model name -> evaluate() result
    # models whose shipped weights were trained on this sample (other noise draws): their
    # scores here flatter them; docs/benchmarks.md scores on real CT they never saw
    trained_on_sample: list[str] = field(default_factory=list)


def run_demo(
    model: str | None = None,
    baseline: str = BASELINE,
    dose: float = DOSE,
    seed: int = 0,
    slices: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> DemoResult:
    """Noise, denoise (model and baseline) and evaluate the embedded sample.

    ``progress(task, done, total)`` is called as slices finish, per task.
    """
    import time

    from denoisekit.evaluate import evaluate
    from denoisekit.infer import DEFAULT_MODEL, denoise_volume, load_model_for_inference
    from denoisekit.noise import add_noise
    from denoisekit.pretrained import training_data
    from denoisekit.samples import load_sample

    clean = load_sample(SAMPLE)
    if slices is not None:
        clean = replace(clean, array=clean.array[:slices].copy())
    t0 = time.perf_counter()
    noisy, params = add_noise(clean, "lowdose", seed, dose=dose)
    result = DemoResult(clean, noisy, params, seconds={"noise": time.perf_counter() - t0})
    for name in dict.fromkeys((model or DEFAULT_MODEL, baseline)):  # once each, in order
        denoiser = load_model_for_inference(name)
        done = 0

        def tick(n: int, _name: str = name) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(_name, done, clean.shape[0])

        t0 = time.perf_counter()
        out = denoise_volume(noisy, denoiser, progress=tick)
        result.seconds[name] = time.perf_counter() - t0
        result.denoised[name] = out
        result.scores[name] = evaluate(out, clean, noisy=noisy)
        if getattr(denoiser, "weights_source", None) == "pretrained" and any(
                d.startswith(f"sample:{SAMPLE}") for d in training_data(name)):
            result.trained_on_sample.append(name)
    return result
