"""Processing: one Lambda function per topology function, with its role, log group and triggers."""

from __future__ import annotations

from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.cdk.assets import LAYER_PYTHON_VERSION, SKIP_LAYER_DEPS_ENV, AssetPaths
from infra.cdk.constructs import acknowledge
from infra.cdk.constructs.permissions import function_role_policy
from infra.cdk.constructs.wiring import Wiring
from infra.cdk.naming import LOG_RETENTION
from infra.topology import Function, SqsTrigger, StreamTrigger, Topology

# Must match the layer, which pip builds for LAYER_PYTHON_VERSION.
RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
HANDLER = "handler.lambda_handler"


class Processing(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        wiring: Wiring,
        assets: AssetPaths,
    ) -> None:
        super().__init__(scope, id)
        self._topology = topology
        self._wiring = wiring
        self._assets = assets
        self._layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            layer_version_name=wiring.settings.name("dependencies"),
            description="Third-party packages of requirements-lambda.lock (boto3 comes with the runtime).",
            code=lambda_.Code.from_asset(str(assets.layer)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
        )
        if assets.placeholder_layer:
            Annotations.of(self._layer).add_warning_v2(
                "orderhub:placeholder-layer",
                f"Built with {SKIP_LAYER_DEPS_ENV}=1: the layer holds no packages and the functions "
                "cannot start with it. Synthesise without it before deploying.",
            )
        unknown = sorted(set(wiring.settings.limits.reserved_concurrency) - {f.name for f in topology.functions})
        if unknown:
            raise ValueError(f"reserved concurrency for functions the topology does not declare: {unknown}")
        self.functions = {spec.name: self._function(spec) for spec in topology.functions}

    def _function(self, spec: Function) -> lambda_.Function:
        _require_access_for_triggers(spec)
        settings = self._wiring.settings
        name = settings.name(spec.name)
        log_group = logs.LogGroup(
            self,
            f"{spec.name}-Logs",
            log_group_name=f"/aws/lambda/{name}",
            retention=LOG_RETENTION,
            # Operational logs only (orders and events live in the tables): go with the stack.
            removal_policy=RemovalPolicy.DESTROY,
        )
        policy = function_role_policy(spec, self._topology, self._wiring, log_group, tracing=settings.tracing)
        role = iam.Role(
            self,
            f"{spec.name}-Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{name}: exactly its topology access",
            inline_policies={"access": iam.PolicyDocument(statements=policy.statements)},
        )
        for finding, reason in policy.wildcards.items():
            acknowledge(role, finding, reason)

        environment = {key: self._wiring.env_value(value) for key, value in spec.environment.items()}
        environment["POWERTOOLS_LOG_LEVEL"] = "INFO"
        if settings.tracing:
            environment["ORDERHUB_TRACING"] = "1"
        function = lambda_.Function(
            self,
            spec.name,
            function_name=name,
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(self._assets.functions[spec.name])),
            layers=[self._layer],
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            # Kept for it and not exceeded by it, so one function cannot starve the others (infra/cdk/limits.py).
            reserved_concurrent_executions=settings.limits.reserved_concurrency.get(spec.name),
            environment=environment,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE if settings.tracing else lambda_.Tracing.DISABLED,
            # Immutable: the grants CDK constructs add on their own (event sources, tracing) are
            # dropped, so the role holds the topology's access and nothing else.
            role=role.without_policy_updates(),
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            f"Pinned to python{LAYER_PYTHON_VERSION}: the dependency layer and requirements-lambda.lock "
            "are built for it; the runtime moves together with them.",
        )
        for trigger in spec.triggers:
            function.add_event_source(self._event_source(trigger))
        return function

    def _event_source(self, trigger: SqsTrigger | StreamTrigger) -> lambda_.IEventSource:
        wiring = self._wiring
        window = Duration.seconds(trigger.max_batching_window_s) if trigger.max_batching_window_s else None
        if isinstance(trigger, SqsTrigger):
            return sources.SqsEventSource(
                wiring.queues[trigger.queue],
                batch_size=trigger.batch_size,
                max_batching_window=window,
                report_batch_item_failures=True,
                max_concurrency=trigger.max_concurrency,
            )
        return sources.DynamoEventSource(
            wiring.tables[trigger.table],
            starting_position=lambda_.StartingPosition[trigger.starting_position],
            batch_size=trigger.batch_size,
            max_batching_window=window,
            retry_attempts=trigger.max_retry_attempts,
            bisect_batch_on_error=trigger.bisect_batch_on_error,
            report_batch_item_failures=True,
            on_failure=sources.SqsDlq(wiring.queues[trigger.on_failure_queue]),
        )


def _require_access_for_triggers(spec: Function) -> None:
    """The role is built from `access` alone, so every trigger must be covered by it."""
    held = {(a.kind, a.resource) for a in spec.access}
    needed: list[tuple[str, str]] = []
    for trigger in spec.triggers:
        if isinstance(trigger, SqsTrigger):
            needed.append(("queue:consume", trigger.queue))
        else:
            needed += [("stream:read", trigger.table), ("queue:send", trigger.on_failure_queue)]
    missing = [(kind, name) for kind, name in needed if (kind, name) not in held and (kind, "*") not in held]
    if missing:
        raise ValueError(f"function {spec.name!r}: its triggers need access it does not declare: {missing}")
