"""Model builders and the private generative models."""
