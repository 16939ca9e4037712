"""denoisekit's built-in plugins: models, backprop rules and noise kinds."""
