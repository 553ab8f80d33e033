"""Pallas kernels for audiojax's hot paths (installed as ``audiojax.kernels``).

Each kernel module holds a pure-jnp reference, the Pallas kernel(s) and an ``interpret`` flag; training kernels
(flash attention) have a ``custom_vjp`` whose backward is Pallas too; the decode kernel is forward only.
Layers reach them only through :func:`audiojax.nn.attention.attention` (``impl="auto" | "xla" | "pallas"``).
"""
