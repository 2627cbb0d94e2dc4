"""The edge's REST API: POST /v1alpha2 and GET|DELETE /v1alpha2/tasks/{id} through the handler,
behind API keys, usage plans and stage throttling, with access logs."""

from __future__ import annotations

import json

from sdctl.builders.cfn.base import LOG_RETENTION_DAYS, RETAIN, getatt, output, ref, sub, trust
from sdctl.builders.cfn.skips import skip
from sdctl.config.model import Config
from sdctl.contracts.tasks import CLIENT_TAG, DEFAULT_CLIENT


def rest_api(cfg: Config, tpl: dict) -> None:
    r, o = tpl["Resources"], tpl["Outputs"]
    stage = cfg.api.stage_name
    r["Api"] = {"Type": "AWS::ApiGateway::RestApi", "Properties": {
        "Name": f"{cfg.stack_name}-api", "Description": "sdctl image API (v1alpha2)",
        "EndpointConfiguration": {"Types": ["REGIONAL"]}}}
    r["ApiTasksResource"] = {"Type": "AWS::ApiGateway::Resource", "Properties": {
        "RestApiId": ref("Api"), "ParentId": getatt("Api", "RootResourceId"), "PathPart": "v1alpha2"}}
    r["ApiTasksMethod"] = {"Type": "AWS::ApiGateway::Method", "Properties": {
        "RestApiId": ref("Api"), "ResourceId": ref("ApiTasksResource"), "HttpMethod": "ANY",
        "AuthorizationType": "NONE", "ApiKeyRequired": True,
        "Integration": {"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST",
                        "Uri": sub("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                                   "${ApiHandler.Arn}/invocations")}}}
    # GET and DELETE /v1alpha2/tasks/{id}: a task's status, and cancelling it.
    r["ApiTasksTaskResource"] = {"Type": "AWS::ApiGateway::Resource", "Properties": {
        "RestApiId": ref("Api"), "ParentId": ref("ApiTasksResource"), "PathPart": "tasks"}}
    r["ApiTasksIdResource"] = {"Type": "AWS::ApiGateway::Resource", "Properties": {
        "RestApiId": ref("Api"), "ParentId": ref("ApiTasksTaskResource"), "PathPart": "{id}"}}
    r["ApiTasksIdMethod"] = {"Type": "AWS::ApiGateway::Method", "Properties": {
        "RestApiId": ref("Api"), "ResourceId": ref("ApiTasksIdResource"), "HttpMethod": "ANY",
        "AuthorizationType": "NONE", "ApiKeyRequired": True,
        "RequestParameters": {"method.request.path.id": True},
        "Integration": r["ApiTasksMethod"]["Properties"]["Integration"]}}
    r["ApiInvokePermission"] = {"Type": "AWS::Lambda::Permission", "Properties": {
        "Action": "lambda:InvokeFunction", "FunctionName": ref("ApiHandler"), "Principal": "apigateway.amazonaws.com",
        "SourceArn": sub("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*/*/v1alpha2")}}
    r["ApiTaskInvokePermission"] = {"Type": "AWS::Lambda::Permission", "Properties": {
        "Action": "lambda:InvokeFunction", "FunctionName": ref("ApiHandler"), "Principal": "apigateway.amazonaws.com",
        "SourceArn": sub("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*/*/v1alpha2/tasks/*")}}
    # A Deployment is a snapshot: CloudFormation makes a new one only for a new logical id, so
    # the id carries a hash of the API's definition (as SAM and CDK do). A changed API then
    # reaches the stage; an unchanged one keeps its deployment.
    deployment = deployment_id(tpl)
    r[deployment] = {"Type": "AWS::ApiGateway::Deployment", "DependsOn": ["ApiTasksMethod", "ApiTasksIdMethod"],
                     "Properties": {"RestApiId": ref("Api"), "Description": "sdctl image API (v1alpha2)"}}
    r["ApiAccessLogGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": f"/sdctl/{cfg.stack_name}/api-access", "RetentionInDays": LOG_RETENTION_DAYS,
        "KmsKeyId": getatt("TopicKey", "Arn")}}
    r["ApiGatewayLogsRole"] = {"Type": "AWS::IAM::Role", "Condition": "OwnApiGatewayAccount", **RETAIN,
                               "Properties": {
        "RoleName": sub(api_logs_role_name(cfg.stack_name)),
        "AssumeRolePolicyDocument": trust("apigateway.amazonaws.com"),
        "ManagedPolicyArns": [sub("arn:${AWS::Partition}:iam::aws:policy/service-role/"
                                  "AmazonAPIGatewayPushToCloudWatchLogs")]}}
    r["ApiGatewayAccount"] = {"Type": "AWS::ApiGateway::Account", "Condition": "OwnApiGatewayAccount", **RETAIN,
                              "Properties": {"CloudWatchRoleArn": getatt("ApiGatewayLogsRole", "Arn")}}
    r["ApiStage"] = {"Type": "AWS::ApiGateway::Stage", "Properties": {
        "RestApiId": ref("Api"), "DeploymentId": ref(deployment), "StageName": stage,
        # Logging needs the account's CloudWatch role first; the reference orders the stage
        # after it when this stack sets it (a DependsOn cannot name a conditional resource).
        "Description": {"Fn::If": ["OwnApiGatewayAccount", sub("sdctl stage; account logging ${ApiGatewayAccount}"),
                                   "sdctl stage"]},
        "TracingEnabled": True,
        "AccessLogSetting": {"DestinationArn": getatt("ApiAccessLogGroup", "Arn"), "Format": json.dumps({
            "requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
            "apiKeyId": "$context.identity.apiKeyId", "method": "$context.httpMethod",
            "path": "$context.path", "status": "$context.status", "latency": "$context.responseLatency",
            "error": "$context.error.message"}, separators=(",", ":"))},
        "MethodSettings": [{"ResourcePath": "/*", "HttpMethod": "*", "MetricsEnabled": True,
                            "LoggingLevel": "ERROR", "DataTraceEnabled": False,
                            "ThrottlingRateLimit": cfg.api.throttle.rate_limit,
                            "ThrottlingBurstLimit": cfg.api.throttle.burst_limit}]}}
    skip(r["ApiStage"], "CKV_AWS_120")
    r["ApiKey"] = {"Type": "AWS::ApiGateway::ApiKey", "DependsOn": ["ApiStage"], "Properties": {
        "Name": f"{cfg.stack_name}-key", "Enabled": True,
        "Tags": [{"Key": CLIENT_TAG, "Value": DEFAULT_CLIENT}]}}
    r["ApiUsagePlan"] = {"Type": "AWS::ApiGateway::UsagePlan", "DependsOn": ["ApiStage"], "Properties": {
        "UsagePlanName": f"{cfg.stack_name}-plan",
        "ApiStages": [{"ApiId": ref("Api"), "Stage": stage}],
        "Throttle": {"RateLimit": cfg.api.throttle.rate_limit, "BurstLimit": cfg.api.throttle.burst_limit}}}
    r["ApiUsagePlanKey"] = {"Type": "AWS::ApiGateway::UsagePlanKey", "Properties": {
        "KeyId": ref("ApiKey"), "KeyType": "API_KEY", "UsagePlanId": ref("ApiUsagePlan")}}
    o["ApiEndpoint"] = output(sub(f"https://${{Api}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{stage}"),
                              "POST {ApiEndpoint}/v1alpha2")
    o["ApiId"] = output(ref("Api"))
    o["ApiKeyId"] = output(ref("ApiKey"), "fetch its value with `sdctl status --show-key`")


def deployment_id(tpl: dict) -> str:
    """`ApiDeployment<hash>`: the hash covers every resource, method and integration of the API."""
    import hashlib

    shape = json.dumps({k: v for k, v in tpl["Resources"].items() if k == "Api" or k.startswith("ApiTasks")},
                       sort_keys=True)
    return "ApiDeployment" + hashlib.sha256(shape.encode()).hexdigest()[:10]


def api_logs_role_name(stack: str) -> str:
    """The name of the CloudWatch role this stack sets for API Gateway (so the deployer can tell
    its own role from another stack's). ${AWS::Region}: IAM names are global."""
    return f"{stack}-apigw-cloudwatch-${{AWS::Region}}"
