"""Secrets from Secrets Manager and Parameter Store, handed to children and Lambda, never shown.

- :mod:`~stageflow.secrets.refs`: the one grammar of references (``secretsmanager:NAME[#KEY]``,
  ``ssm:/PATH``), shared with ``config.py``.
- :mod:`~stageflow.secrets.stores`: reading them (:func:`resolve`, :func:`fetch`); every value is
  registered with the redactor as it arrives; all failures in one error.
- :mod:`~stageflow.secrets.sinks`: handing values on: a child's environment (``TF_VAR_*`` for
  Terraform), a command run with them, an env file, a Lambda function's environment.

Everything takes plain inputs: the environment's ``secrets`` table, and the boto3 clients it needs.
"""

from stageflow.redact import Secret
from stageflow.secrets.refs import (
    AWSCURRENT,
    SECRETSMANAGER,
    SSM,
    MalformedSecretReference,
    SecretRef,
    check_version_stage,
    parse_ref,
    parse_refs,
    sources,
)
from stageflow.secrets.sinks import (
    LambdaEnvUpdate,
    check_env_file_target,
    child_env,
    env_file_ignored,
    exec_child,
    exec_env,
    format_env_line,
    register_deployed_values,
    sensitive_var_names,
    tf_var_name,
    tf_vars,
    update_lambda_env,
    write_env_file,
)
from stageflow.secrets.stores import (
    Problem,
    SecretsNotFound,
    SecretsUnavailable,
    fetch,
    raise_for_problems,
    resolve,
)

__all__ = [
    "AWSCURRENT",
    "SECRETSMANAGER",
    "SSM",
    "LambdaEnvUpdate",
    "MalformedSecretReference",
    "Problem",
    "Secret",
    "SecretRef",
    "SecretsNotFound",
    "SecretsUnavailable",
    "check_env_file_target",
    "check_version_stage",
    "child_env",
    "env_file_ignored",
    "exec_child",
    "exec_env",
    "fetch",
    "format_env_line",
    "parse_ref",
    "parse_refs",
    "raise_for_problems",
    "register_deployed_values",
    "resolve",
    "sensitive_var_names",
    "sources",
    "tf_var_name",
    "tf_vars",
    "update_lambda_env",
    "write_env_file",
]
