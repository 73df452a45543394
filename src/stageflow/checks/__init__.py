"""The service checks: the service's own suites and what is run against a deployed environment.

One module per check — ``lint``, ``unit`` (coverage floor), ``integration``, ``smoke``, ``load`` (one
headless locust run) — each a plain function taking plain inputs (config, paths, a reporter, the
endpoint) and returning a frozen result; a failing check raises
:class:`~stageflow.errors.CheckFailed` (exit 1) after its reports are written. ``suite`` runs pytest and
reads its reports, ``target`` says where the deployed service answers, ``server`` serves the app on
127.0.0.1, ``stages`` adapts the checks to the pipeline's stages.
"""
