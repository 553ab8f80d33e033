"""Pallas kernels for audiojax's hot paths (installed as ``audiojax.kernels``).

Each kernel module holds a pure-jnp reference, the Pallas kernel(s), a ``custom_vjp`` and an ``interpret`` flag.
Layers reach them only through :func:`audiojax.nn.attention.attention` (``impl="auto" | "xla" | "pallas"``).
"""
