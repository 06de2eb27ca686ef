"""Storage backends: one module per backend, plus shared listing and reader helpers."""
