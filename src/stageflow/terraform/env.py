"""The child environment for Terraform: nothing from the caller's shell steers it by accident.

As terraform-exec's ``prohibitedEnvVars``: TF_LOG*, TF_WORKSPACE, TF_CLI_ARGS*, TF_VAR_* and the
like come only from us (``extra``), never leaked from the caller. Automation settings are forced and
the CLI config file is always ours (the machine may point TF_CLI_CONFIG_FILE at a file that does not
exist). In local mode every AWS_* variable of the caller is dropped and the emulator's dummy
credentials are set instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PROHIBITED = frozenset(
    {
        "TF_LOG",
        "TF_LOG_PATH",
        "TF_LOG_CORE",
        "TF_LOG_PROVIDER",
        "TF_WORKSPACE",
        "TF_DATA_DIR",
        "TF_INPUT",
        "TF_IN_AUTOMATION",
        "TF_CLI_CONFIG_FILE",
        "TF_PLUGIN_CACHE_DIR",
        "TF_REATTACH_PROVIDERS",
        "TF_APPEND_USER_AGENT",
        "TF_IGNORE",
        "TF_REGISTRY_DISCOVERY_RETRY",
        "TF_REGISTRY_CLIENT_TIMEOUT",
        "CHECKPOINT_DISABLE",
    }
)
PROHIBITED_PREFIXES = ("TF_VAR_", "TF_CLI_ARGS", "TF_TOKEN_")

FORCED = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}


def is_prohibited(name: str) -> bool:
    return name in PROHIBITED or name.startswith(PROHIBITED_PREFIXES)


def build_env(
    base: Mapping[str, str],
    *,
    cli_config: str,
    data_dir: str | None = None,
    local_env: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``base`` (the process environment) cleaned, then ours: forced settings, local AWS, extra."""
    env = {k: v for k, v in base.items() if not is_prohibited(k)}
    if local_env is not None:
        env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        env.update({k: v for k, v in local_env.items() if v != ""})
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        # No profile or credentials file of this machine's user may steer the backend.
        env["AWS_CONFIG_FILE"] = os.devnull
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env.update(FORCED)
    env["TF_CLI_CONFIG_FILE"] = cli_config
    if data_dir:
        env["TF_DATA_DIR"] = data_dir
    for k, v in (extra or {}).items():
        if local_env is not None and k.startswith("AWS_"):
            continue  # local mode: the emulator's credentials win
        env[k] = v
    return env
