"""CLI commands by feature; each module has ``register(cli)``."""
