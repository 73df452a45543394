"""Secrets from Secrets Manager and Parameter Store, handed to children and Lambda, never shown.

- :mod:`~stageflow.secrets.refs`: the one grammar of references (``secretsmanager:NAME[#KEY]``,
  ``ssm:/PATH``), shared with ``config.py``.
- :mod:`~stageflow.secrets.stores`: reading them (``resolve``, ``fetch``); every value is
  registered with the redactor as it arrives; all failures in one error.
- :mod:`~stageflow.secrets.sinks`: handing values on: a child's environment (``TF_VAR_*`` for
  Terraform), a command run with them, an env file, a Lambda function's environment.

Everything takes plain inputs: the environment's ``secrets`` table, and the boto3 clients it needs.
Import from the module that does the job (``from stageflow.secrets import stores``): this file
imports nothing, so ``config.py`` loading the grammar does not load the readers and writers.
"""
