"""audiojax: JAX/Flax research codebase for audio foundation models."""

__version__ = "0.1.0"
