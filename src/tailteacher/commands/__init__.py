"""One module per `tailteacher` subcommand. Each exposes ``register(subparsers)``, which adds its
parser and sets ``func`` to a handler ``(args) -> int`` (0 on success).

A handler raises ``tailteacher.errors.InputError`` (or ``ValueError``) for bad input; the CLI
prints the message and exits 2, never a traceback.
"""
