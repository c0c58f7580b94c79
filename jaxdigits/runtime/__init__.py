"""What runs need around the training core: config checks, memory estimates, signals,
multi-host set-up, XLA flags and the compilation cache."""
