"""User-facing errors: one line naming the file/key and the fix, no traceback."""


class UserError(Exception):
  """Bad input from the user (file, config key, checkpoint, mesh...).

  The CLI prints ``error: <message>`` on one line and exits with status 2. The message must name the offending
  file or key and say how to fix it.
  """
