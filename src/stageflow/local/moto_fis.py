"""The chaos module's resources in the emulator: CloudFormation's ``AWS::FIS::ExperimentTemplate`` (moto 5
has FIS but no CloudFormation model for its templates: a stack holding them would be created empty)
and CloudWatch's PutCompositeAlarm (see :func:`register`).

Why CloudFormation at all: the hashicorp/aws provider before the release carrying its fix #41209 refuses
an experiment action's ``Functions`` target at plan time (issue #41208: the key is missing from its
list of valid target keys), so ``infrastructure/modules/chaos`` declares the templates as one
CloudFormation stack, which AWS has accepted with Lambda targets since FIS's Lambda actions launched.
This model makes the emulator do what CloudFormation does with such a resource: create the template
(with its tags) through moto's own FIS backend, ``Ref`` it by its id, replace it on update, delete it
with the stack. A fidelity fix, listed in docs/architecture.md's seam table; applied by
:func:`stageflow.local.moto_fixes.apply` in the emulator process only.
"""

from __future__ import annotations

from typing import Any

from moto.core.common_models import CloudFormationModel


def _lower(d: dict[str, Any] | None) -> dict[str, Any]:
    return {k[:1].lower() + k[1:]: v for k, v in (d or {}).items()}


class FisExperimentTemplateModel(CloudFormationModel):
    """One ``AWS::FIS::ExperimentTemplate`` of a stack: its physical id is the template's id."""

    def __init__(self, template_id: str, account_id: str, region_name: str):
        self.id, self.account_id, self.region_name = template_id, account_id, region_name

    @property
    def physical_resource_id(self) -> str:
        return self.id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::FIS::ExperimentTemplate"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "Id":
            return self.id
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        **kwargs: Any,
    ) -> FisExperimentTemplateModel:  # fmt: skip
        from moto.fis.models import fis_backends

        p = cloudformation_json.get("Properties") or {}
        created = fis_backends[account_id][region_name].create_experiment_template(
            client_token=None,
            description=p.get("Description", ""),
            stop_conditions=[_lower(s) for s in p.get("StopConditions") or []],
            targets={name: _lower(t) for name, t in (p.get("Targets") or {}).items()},
            actions={name: _lower(a) for name, a in (p.get("Actions") or {}).items()},
            role_arn=p.get("RoleArn", ""),
            tags=p.get("Tags") or None,
        )
        return cls(created["id"], account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls, original_resource: FisExperimentTemplateModel, new_resource_name: str,
        cloudformation_json: dict[str, Any], account_id: str, region_name: str,
    ) -> FisExperimentTemplateModel:  # fmt: skip
        where = (cloudformation_json, account_id, region_name)
        cls.delete_from_cloudformation_json(original_resource.id, *where)
        return cls.create_from_cloudformation_json(new_resource_name, *where)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        from moto.fis.models import fis_backends

        backend = fis_backends[account_id][region_name]
        if resource_name in backend.experiment_templates:
            backend.delete_experiment_template(resource_name)


def register() -> None:
    """Make moto's CloudFormation see the model (its model list is computed once and cached), and let
    moto's CloudWatch answer PutCompositeAlarm (the templates' stop condition, modules/chaos): moto keeps
    composite alarms (an alarm with a rule, listed under ``CompositeAlarms``) and its PutMetricAlarm
    already reads ``AlarmRule`` for them, but routes no PutCompositeAlarm to it ("not implemented", which
    Terraform retries for minutes)."""
    from moto.cloudformation import parsing
    from moto.cloudwatch.responses import CloudWatchResponse

    if not hasattr(CloudWatchResponse, "put_composite_alarm"):
        CloudWatchResponse.put_composite_alarm = CloudWatchResponse.put_metric_alarm  # type: ignore[attr-defined]

    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    assert "AWS::FIS::ExperimentTemplate" in parsing.get_model_map()
