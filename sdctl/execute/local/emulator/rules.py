"""AWS rules moto skips, taught to the local emulator so that it refuses what AWS refuses.

Each rule is a documented check AWS makes and moto 5.2 does not; each raises the error AWS
answers, with its code and words, so the code under test meets the same refusal it would on
an account. tests/test_emulator_rules.py runs every rule through boto3 as sdctl calls it.

- **DeleteUsagePlan with API stages.** API Gateway refuses to delete a usage plan that still
  lists an API stage: "BadRequestException: Cannot delete Usage Plan ID because there are API
  Stages associated with it" (API Gateway API Reference, DeleteUsagePlan; the error as
  reported in aws/aws-sdk-js#3841 and serverless/serverless#4006). The stages must first be
  removed with UpdateUsagePlan, ``op: remove, path: /apiStages, value: API_ID:STAGE``.
- **RunInstances with an image of another architecture.** EC2 refuses an instance type whose
  architecture differs from its image's: "The architecture 'x86_64' of the specified instance
  type does not match the architecture 'arm64' of the specified AMI" (InvalidParameterValue;
  EC2 User Guide, "Find an AMI": "the AMI must be compatible with the instance type").

- **Resource import.** moto has no IMPORT change set: it would create the stack's resources
  anew. CloudFormation adopts existing resources into a stack with ``ChangeSetType=IMPORT`` and
  ``ResourcesToImport`` (User Guide, "Import AWS resources into a CloudFormation stack"), and
  refuses an import whose resource lacks a ``DeletionPolicy``, is not in the template, or does
  not exist. Here each listed resource is looked up by its identifier and becomes the stack's,
  untouched, with those refusals.

- **StartMessageMoveTask.** moto answers it with a 500 page ("not yet implemented"), so
  `queue redrive --local` spent three retries on it. SQS moves a dead-letter queue's messages
  back server-side, and refuses a source that is no queue's dead-letter queue ("Source queue
  must be configured as a Dead Letter Queue"; SQS API Reference, StartMessageMoveTask). Here
  the move runs at once, in the request; ListMessageMoveTasks reports it COMPLETED.

- **RedriveAllowPolicy.** moto takes the attribute and forgets it: GetQueueAttributes leaves it
  out and any queue may name the dead-letter queue in its RedrivePolicy. SQS keeps it and lets
  only the queues it allows use the queue as their dead-letter queue: "byQueue – Only queues
  specified by the sourceQueueArns parameter can specify this queue as the dead-letter queue",
  "denyAll – No source queues can specify this queue as the dead-letter queue" (SQS API
  Reference, SetQueueAttributes, RedriveAllowPolicy). Here it is kept, returned, and a
  RedrivePolicy naming a dead-letter queue that does not allow the queue is refused with
  InvalidParameterValue (the documentation gives the code, not the words; these are ours).

Checked and already as strict as AWS, so nothing is patched (the rule tests hold moto to it):
a second DynamoDB table of a name (ResourceInUseException), a second bucket of a name outside
us-east-1 (BucketAlreadyOwnedByYou), a second queue of a name with other attributes
(QueueAlreadyExists), and a message visibility past 12 hours in total (InvalidParameterValue,
SQS API Reference, ChangeMessageVisibility).
"""

from __future__ import annotations


def usage_plan_stages() -> None:
    from moto.apigateway.exceptions import BadRequestException
    from moto.apigateway.models import APIGatewayBackend

    if getattr(APIGatewayBackend, "_sdctl_rules", False):
        return
    original = APIGatewayBackend.delete_usage_plan

    def delete_usage_plan(self, usage_plan_id: str) -> None:
        plan = self.usage_plans.get(usage_plan_id)
        if plan is not None and plan.api_stages:
            raise BadRequestException(f"Cannot delete Usage Plan {usage_plan_id} because there are API Stages "
                                      "associated with it")
        return original(self, usage_plan_id)

    APIGatewayBackend.delete_usage_plan = delete_usage_plan
    APIGatewayBackend._sdctl_rules = True


def instance_architecture() -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.instance_types import INSTANCE_TYPES
    from moto.ec2.models.instances import InstanceBackend

    if getattr(InstanceBackend, "_sdctl_rules", False):
        return
    original = InstanceBackend.run_instances

    def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):
        image = self.amis.get(image_id) if hasattr(self, "amis") else None
        itype = kwargs.get("instance_type")
        kinds = (INSTANCE_TYPES.get(itype) or {}).get("ProcessorInfo", {}).get("SupportedArchitectures") or []
        wanted = getattr(image, "architecture", None)
        if image is not None and wanted and kinds and wanted not in kinds:
            raise EC2ClientError("InvalidParameterValue", f"The architecture '{kinds[0]}' of the specified "
                                 f"instance type does not match the architecture '{wanted}' of the specified AMI. "
                                 "Specify an instance type and an AMI that have matching architectures, and try "
                                 "again. You can use 'describe-instance-types' or 'describe-images' to discover "
                                 "the architecture of the instance type or AMI.")
        return original(self, image_id, count, user_data, security_group_names, **kwargs)

    InstanceBackend.run_instances = run_instances
    InstanceBackend._sdctl_rules = True


def _existing(kind: str, identifier: dict, account: str, region: str):
    """The moto object an import identifier names, or None."""
    try:
        if kind == "AWS::S3::Bucket":
            from moto.s3.models import s3_backends

            return s3_backends[account]["global"].get_bucket(identifier["BucketName"])
        if kind == "AWS::DynamoDB::Table":
            from moto.dynamodb.models import dynamodb_backends

            return dynamodb_backends[account][region].get_table(identifier["TableName"])
        if kind == "AWS::SQS::Queue":
            from moto.sqs.models import sqs_backends

            return sqs_backends[account][region].get_queue(identifier["QueueUrl"].rstrip("/").rsplit("/", 1)[-1])
        if kind == "AWS::KMS::Key":
            from moto.kms.models import kms_backends

            return kms_backends[account][region].describe_key(identifier["KeyId"])
    except Exception:  # noqa: BLE001 - each backend has its own not-found error
        return None
    return None


def import_change_sets() -> None:
    import json

    from moto.cloudformation import parsing
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.models import CloudFormationBackend
    from moto.cloudformation.responses import CloudFormationResponse

    if getattr(CloudFormationBackend, "_sdctl_rules", False):
        return
    original_create = CloudFormationResponse.create_change_set

    def create_change_set(self):
        if self._get_param("ChangeSetType") != "IMPORT":
            return original_create(self)
        wanted = self._get_param("ResourcesToImport") or []
        template = json.loads(self._get_param("TemplateBody") or "{}")
        resources = template.get("Resources", {})
        for item in wanted:
            lid, kind = item["LogicalResourceId"], item["ResourceType"]
            ident = item.get("ResourceIdentifier") or {}
            if lid not in resources or resources[lid]["Type"] != kind:
                raise ValidationError(message=f"Resource {lid} of type {kind} to import is not in the template")
            if "DeletionPolicy" not in resources[lid]:
                raise ValidationError(message=f"The following resource types require a DeletionPolicy "
                                              f"attribute for import: [{lid}]")
            if _existing(kind, ident, self.current_account, self.region) is None:
                raise ValidationError(message=f"Resource {lid} with identifier {json.dumps(ident)} does not exist")
        if set(resources) - {i["LogicalResourceId"] for i in wanted}:
            raise ValidationError(message="As part of the import operation, you cannot modify or add "
                                          f"[{', '.join(sorted(set(resources) - {i['LogicalResourceId'] for i in wanted}))}]")
        result = original_create(self)
        cs = self.cloudformation_backend.change_sets[result.result["Id"]]
        cs.resources_to_import = {i["LogicalResourceId"]: i for i in wanted}
        return result

    original_execute = CloudFormationBackend.execute_change_set

    def execute_change_set(self, change_set_name, stack_name=None):
        cs = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None)
        adopt = getattr(cs, "resources_to_import", None)
        if not adopt:
            return original_execute(self, change_set_name, stack_name)
        create = parsing.parse_and_create_resource

        def adopt_or_create(logical_id, resource_json, resources_map, account_id, region_name):
            item = adopt.get(logical_id)
            if item is None:
                return create(logical_id, resource_json, resources_map, account_id, region_name)
            found = _existing(item["ResourceType"], item["ResourceIdentifier"], account_id, region_name)
            found.cf_resource_type, found.logical_resource_id = item["ResourceType"], logical_id
            return found

        parsing.parse_and_create_resource = adopt_or_create
        try:
            return original_execute(self, change_set_name, stack_name)
        finally:
            parsing.parse_and_create_resource = create

    CloudFormationResponse.create_change_set = create_change_set
    CloudFormationBackend.execute_change_set = execute_change_set
    CloudFormationBackend._sdctl_rules = True


def message_move_tasks() -> None:
    import json
    import uuid

    from moto.core.responses import ActionResult
    from moto.sqs.exceptions import InvalidParameterValue
    from moto.sqs.responses import SQSResponse

    if hasattr(SQSResponse, "start_message_move_task"):
        return

    def by_arn(backend, arn: str | None):
        return next((q for q in backend.queues.values() if q.queue_arn == arn), None)

    def start_message_move_task(self):
        backend = self.sqs_backend
        source, dest_arn = self._get_param("SourceArn"), self._get_param("DestinationArn")
        dlq = by_arn(backend, source)
        if dlq is None:
            raise InvalidParameterValue("The resource that you specified for the SourceArn parameter doesn't exist.")
        feeders = [q for q in backend.queues.values()
                   if (q.redrive_policy or {}).get("deadLetterTargetArn") == source]
        if not feeders:
            raise InvalidParameterValue("Source queue must be configured as a Dead Letter Queue.")
        dest = by_arn(backend, dest_arn) if dest_arn else (feeders[0] if len(feeders) == 1 else None)
        if dest is None:
            raise InvalidParameterValue("The resource that you specified for the DestinationArn parameter "
                                        "doesn't exist." if dest_arn else "DestinationArn is required here.")
        moved = 0
        while True:
            batch = backend.receive_message(dlq.name, 10, 0, 30, message_attribute_names=["All"])
            if not batch:
                break
            for m in batch:
                backend.send_message(dest.name, m.body, message_attributes=m.message_attributes or None)
                backend.delete_message(dlq.name, m.receipt_handle)
                moved += 1
        handle = json.dumps({"taskId": uuid.uuid4().hex, "sourceArn": source, "moved": moved})
        backend._sdctl_moves = [*getattr(backend, "_sdctl_moves", []), {
            "TaskHandle": handle, "Status": "COMPLETED", "SourceArn": source, "DestinationArn": dest.queue_arn,
            "ApproximateNumberOfMessagesMoved": moved, "ApproximateNumberOfMessagesToMove": moved}]
        return ActionResult({"TaskHandle": handle})

    def list_message_move_tasks(self):
        source = self._get_param("SourceArn")
        found = [t for t in getattr(self.sqs_backend, "_sdctl_moves", []) if t["SourceArn"] == source]
        return ActionResult({"Results": found[-10:][::-1]})

    SQSResponse.start_message_move_task = start_message_move_task
    SQSResponse.list_message_move_tasks = list_message_move_tasks


def redrive_allow_policy() -> None:
    import json

    from moto.sqs.exceptions import InvalidParameterValue
    from moto.sqs.models import Queue

    if getattr(Queue, "_sdctl_redrive_allow", False):
        return
    attributes, setup_dlq = Queue.attributes.fget, Queue._setup_dlq

    def allowed(queue) -> dict:
        """The policy as kept: a string from the SQS API, an object from CloudFormation."""
        raw = getattr(queue, "redrive_allow_policy", None) or {}
        return raw if isinstance(raw, dict) else json.loads(raw)

    def with_redrive_allow(self) -> dict:
        result = attributes(self)
        if getattr(self, "redrive_allow_policy", None):
            result["RedriveAllowPolicy"] = json.dumps(allowed(self), separators=(",", ":"))
        return result

    def checked_setup_dlq(self, policy) -> None:
        setup_dlq(self, policy)
        dlq = getattr(self, "dead_letter_queue", None)
        allow = allowed(dlq) if dlq is not None else {}
        permission = allow.get("redrivePermission", "allowAll")
        if permission == "denyAll" or (permission == "byQueue" and self.queue_arn not in allow.get(
                "sourceQueueArns", [])):
            self.redrive_policy, self.dead_letter_queue = None, None
            raise InvalidParameterValue(f"Value {json.dumps(policy) if isinstance(policy, dict) else policy} for "
                                        f"parameter RedrivePolicy is invalid. Reason: the dead-letter queue "
                                        f"{dlq.queue_arn} does not allow {self.queue_arn} as a source queue "
                                        "(its RedriveAllowPolicy).")

    Queue.attributes = property(with_redrive_allow)
    Queue._setup_dlq = checked_setup_dlq
    Queue._sdctl_redrive_allow = True


def apply() -> None:
    """Every rule above, once per process."""
    usage_plan_stages()
    instance_architecture()
    import_change_sets()
    message_move_tasks()
    redrive_allow_policy()
