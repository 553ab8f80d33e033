"""Tasks: the per-family part of training (model, data, loss, evaluation) that the one trainer drives. The contract is
:mod:`audiojax.tasks.base`; :mod:`audiojax.tasks.registry` maps ``config.task`` to a task class."""
