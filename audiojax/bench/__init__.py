"""Benchmarks behind ``python -m audiojax bench`` (``make bench``): one module per family plus the attention
kernels, timed with :mod:`.timing`. They print figures; no test asserts a speed."""
