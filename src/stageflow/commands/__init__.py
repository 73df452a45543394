"""CLI commands, one module per feature, each with ``register(cli)``."""
