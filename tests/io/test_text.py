"""denoisekit.io.text.fit: what a header field holds."""

from denoisekit.io.text import fit


def test_fit_counts_bytes_and_keeps_whole_characters_and_words():
    assert fit("short", 64) == "short"
    umlauts = "ü" * 40  # 80 bytes
    assert fit(umlauts, 64) == "ü" * 32 and len(fit(umlauts, 63).encode()) == 62  # never half a character
    said = "noise lowdose seed=0 dose=0.25 scan_relative=True i0=200000.0 electronic_noise=8.0"
    assert fit(said, 79) == said[:79]
    assert fit(said, 79, words=True) == "noise lowdose seed=0 dose=0.25 scan_relative=True i0=200000.0"
    assert fit("a " + "x" * 100, 20, words=True) == "a " + "x" * 18  # no space late enough: cut in the word
