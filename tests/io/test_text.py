"""denoisekit.io.text.fit: what a header field holds."""

from denoisekit.io.text import fit, fit_steps


def test_fit_counts_bytes_and_keeps_whole_characters_and_words():
    assert fit("short", 64) == "short"
    umlauts = "ü" * 40  # 80 bytes
    assert fit(umlauts, 64) == "ü" * 32 and len(fit(umlauts, 63).encode()) == 62  # never half a character
    said = "noise lowdose seed=0 dose=0.25 scan_relative=True i0=200000.0 electronic_noise=8.0"
    assert fit(said, 79) == said[:79]
    assert fit(said, 79, words=True) == "noise lowdose seed=0 dose=0.25 scan_relative=True i0=200000.0"
    assert fit("a " + "x" * 100, 20, words=True) == "a " + "x" * 18  # no space late enough: cut in the word


def test_fit_steps_keeps_what_each_step_was_and_the_latest_step_most():
    noise = "noise lowdose seed=0 dose=0.25 scan_relative=False i0=200000.0"
    denoise = "denoised residual-mul strength auto 1.00 weights pretrained"
    assert fit_steps(f"{noise}; {denoise}", 200) == f"{noise}; {denoise}"
    assert fit_steps(f"{noise}; {denoise}", 79) == "noise lowdose seed=0 dose=0.25; denoised residual-mul strength auto 1.00"
    assert fit_steps(f"noise gaussian seed=1 sigma=25; {noise}; {denoise}", 79).startswith("noise lowdose seed=0 dose=0.25;")
    assert fit_steps(f"{noise}; {denoise}", 50) == "denoised residual-mul strength auto 1.00 weights"  # no room for both
    assert fit_steps(denoise, 40) == fit(denoise, 40, words=True)


def test_chain_leaves_out_a_conversion_a_step_follows():
    from denoisekit.io.text import chain

    converted = "converted by denoisekit export from a DICOM series"
    assert chain(converted, "denoised tv") == "denoised tv"
    assert chain(f"noise lowdose seed=0; {converted}", "", "denoised tv") == "noise lowdose seed=0; denoised tv"
    assert chain("noise lowdose seed=0", converted) == f"noise lowdose seed=0; {converted}"  # the last step stays
    assert chain("", None) == ""


def test_a_cut_at_a_word_drops_the_punctuation_it_leaves():
    assert fit("denoised by x (weights: pretrained), strength auto", 40, words=True) == "denoised by x (weights: pretrained)"
    assert fit("a, b", 64, words=True) == "a, b"  # uncut: as it is


def test_fit_steps_keeps_a_simulation_however_many_steps_follow():
    """Noise, then two denoisers, as NIfTI: the oldest step went first, the simulation with it,
    and the DICOM label lost '(on simulated noise)' (code review)."""
    noise = "noise lowdose seed=0 dose=0.25 scan_relative=False i0=200000.0"
    text = f"{noise}; denoised tv strength auto 0.81; denoised nl-means strength auto 1.00 weights pretrained"
    kept = fit_steps(text, 79)
    assert kept.startswith("noise lowdose seed=0 dose=0.25; ") and "nl-means" in kept and len(kept.encode()) <= 79


def test_a_word_cut_before_punctuation_leaves_no_space():
    assert fit("x" * 70 + " : verylongwordhere", 79, words=True) == "x" * 70
