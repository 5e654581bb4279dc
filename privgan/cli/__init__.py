"""Console commands: absl flags in, library calls, text or files out."""
