"""Converters from published PyTorch checkpoints to audiojax model directories."""
