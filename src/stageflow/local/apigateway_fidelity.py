"""Emulator fidelity for the front door's REST API (modules/front_door): what AWS keeps and does that
moto 5.2 drops or refuses, so a second Terraform apply changes nothing and a changed integration applies.

- ``cacheKeyParameters`` on PutIntegration: moto ignores them and answers ``[]``, so the AWS provider
  saw the proxy integrations' ``cache_key_parameters`` missing after every refresh and planned an
  update on every plan.
- UpdateIntegration (PATCH of an integration): moto answers "not implemented" (a 500 the provider
  retries for minutes). Here it applies the patch operations API Gateway takes for the integration's
  scalar fields and its ``cacheKeyParameters``, ``requestParameters`` and ``requestTemplates``.

Applied inside the emulator process (``stageflow.local.server``); none of it changes what production
gets. A moto without the expected handler (a future rewrite) is left alone.
"""

from __future__ import annotations

import functools
import json
from typing import Any

_APPLIED = "_stageflow_apigateway_fidelity"
FIXES = ["apigateway-cache-key-parameters", "apigateway-update-integration"]
# PATCH path -> moto's Integration attribute (moto spells one of them "behaviour")
_SCALARS = {
    "/uri": "uri",
    "/httpMethod": "http_method",
    "/type": "integration_type",
    "/timeoutInMillis": "timeout_in_millis",
    "/cacheNamespace": "cache_namespace",
    "/passthroughBehavior": "passthrough_behaviour",
    "/contentHandling": "content_handling",
    "/connectionType": "connection_type",
    "/credentials": "credentials",
}
_MAPS = {"/requestParameters/": "request_parameters", "/requestTemplates/": "request_templates"}


def apply() -> list[str]:
    """Patch moto's API Gateway handler in this process; returns the names of the fixes. Idempotent."""
    try:
        from moto.apigateway.responses import APIGatewayResponse
    except ImportError:  # pragma: no cover - moto is a dependency
        return []
    if getattr(APIGatewayResponse, _APPLIED, False):
        return FIXES
    put = getattr(APIGatewayResponse, "put_integration", None)
    if not callable(put):  # pragma: no cover
        return []

    @functools.wraps(put)
    def put_integration(self):
        status, headers, body = put(self)
        keys = self._get_param("cacheKeyParameters")
        if keys is not None:
            integration = _integration(self)
            integration.cache_key_parameters = [str(k) for k in keys]
            body = json.dumps(integration.to_json())
        return status, headers, body

    def update_integration(self):
        integration = _integration(self)
        for op in self._get_param("patchOperations") or []:
            patch(integration, op)
        return 200, {}, json.dumps(integration.to_json())

    APIGatewayResponse.put_integration = put_integration
    APIGatewayResponse.update_integration = update_integration
    setattr(APIGatewayResponse, _APPLIED, True)
    return FIXES


def _integration(response: Any) -> Any:
    """The integration of ``/restapis/API/resources/RESOURCE/methods/METHOD/integration``."""
    parts = response.path.split("/")
    return response.backend.get_integration(parts[2], parts[4], parts[6])


def patch(integration: Any, op: dict[str, Any]) -> None:
    """One JSON-patch operation of UpdateIntegration on moto's ``Integration``; an unknown path is
    API Gateway's BadRequestException."""
    from moto.apigateway.exceptions import BadRequestException

    kind, path, value = op.get("op"), str(op.get("path") or ""), op.get("value")
    if path in _SCALARS and kind in ("replace", "add"):
        setattr(integration, _SCALARS[path], value)
        return
    if path in _SCALARS and kind == "remove":
        setattr(integration, _SCALARS[path], None)
        return
    if path.startswith("/cacheKeyParameters/") and kind in ("add", "remove"):
        name = path[len("/cacheKeyParameters/") :].replace("~1", "/").replace("~0", "~")
        keys = [k for k in (integration.cache_key_parameters or []) if k != name]
        integration.cache_key_parameters = keys + ([name] if kind == "add" else [])
        return
    for prefix, attr in _MAPS.items():
        if path.startswith(prefix) and kind in ("add", "replace", "remove"):
            name = path[len(prefix) :].replace("~1", "/").replace("~0", "~")
            values = dict(getattr(integration, attr) or {})
            if kind == "remove":
                values.pop(name, None)
            else:
                values[name] = value
            setattr(integration, attr, values or None)
            return
    raise BadRequestException(f"Invalid patch path '{path}' for op '{kind}' on an integration")
