"""``python -m denoisekit``: the same CLI as the ``denoisekit`` script (useful where only the
interpreter is on PATH, or to pick one)."""

from denoisekit.cli import main

main()
