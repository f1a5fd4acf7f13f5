"""The Kubernetes deployment files: Helm values the Dagster chart accepts, in step with q2c.

No cluster here, so the values are checked against the documented values of the official
`dagster/dagster` chart (its values.yaml and values schema, version 1.13): every key q2c sets
must be one the chart documents, at the place it documents it. Then against q2c itself: the
code location is the module Dagster loads, the limits are those of the Postgres instance
file, the Celery worker config passes dagster-celery's own validation, and the image has the
rendering packages.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
VALUES = REPO / "deploy" / "helm" / "values.yaml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
WORKER_YAML = REPO / "deploy" / "celery-worker.yaml"
INSTANCE_YAML = REPO / "orchestration" / "dagster-postgres.yaml"

# The chart's top-level values (helm/dagster/values.yaml, 1.13).
CHART_TOP_LEVEL = {
    "global", "nameOverride", "fullnameOverride", "rbacEnabled", "imagePullSecrets",
    "dagsterWebserver", "computeLogManager", "pythonLogs", "dagster-user-deployments",
    "scheduler", "runLauncher", "postgresql", "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "dagsterDaemon",
    "busybox", "extraManifests", "migrate", "telemetry", "serviceAccount", "retention",
    "additionalInstanceConfig", "concurrency", "pipelineRun",
}
CHART_GLOBAL = {"postgresqlSecretName", "dagsterHome", "serviceAccountName",
                "celeryConfigSecretName"}
CHART_WEBSERVER = {
    "replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace",
    "enableReadOnly", "dbStatementTimeout", "dbPoolRecycle", "logLevel", "env",
    "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "volumes", "volumeMounts",
    "annotations", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
    "securityContext", "resources", "initContainerResources", "readinessProbe",
    "livenessProbe", "startupProbe", "schedulerName",
}
CHART_USER_DEPLOYMENTS = {"enabled", "enableSubchart", "imagePullSecrets", "deployments"}
CHART_USER_DEPLOYMENT = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "port",
    "includeConfigInLaunchedRuns", "env", "envConfigMaps", "envSecrets", "labels",
    "volumes", "volumeMounts", "initContainers", "sidecarContainers", "annotations",
    "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
    "resources", "readinessProbe", "livenessProbe", "startupProbe", "service",
    "schedulerName",
}
CHART_IMAGE = {"repository", "tag", "pullPolicy"}
CHART_RUN_LAUNCHER_TYPES = {"K8sRunLauncher": "k8sRunLauncher",
                            "CeleryK8sRunLauncher": "celeryK8sRunLauncher",
                            "CustomRunLauncher": "customRunLauncher"}
CHART_K8S_RUN_LAUNCHER = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumes", "volumeMounts", "labels",
    "resources", "schedulerName", "failPodOnRunFailure", "securityContext", "runK8sConfig",
}
CHART_RUN_K8S_CONFIG = {"containerConfig", "podTemplateSpecMetadata", "podSpecConfig",
                        "jobSpecConfig", "jobMetadata"}
CHART_POSTGRESQL = {"enabled", "image", "postgresqlHost", "postgresqlUsername",
                    "postgresqlPassword", "postgresqlDatabase", "postgresqlParams",
                    "postgresqlScheme", "service"}
CHART_DAEMON = {
    "enabled", "image", "heartbeatTolerance", "runCoordinator", "runMonitoring",
    "runRetries", "sensors", "schedules", "env", "envConfigMaps", "envSecrets",
    "deploymentLabels", "labels", "volumes", "volumeMounts", "annotations", "nodeSelector",
    "affinity", "tolerations", "podSecurityContext", "securityContext", "resources",
    "initContainerResources", "livenessProbe", "readinessProbe", "startupProbe",
    "schedulerName",
}
CHART_QUEUED_RUN_COORDINATOR = {"maxConcurrentRuns", "tagConcurrencyLimits",
                                "dequeueIntervalSeconds", "dequeueUseThreads",
                                "dequeueNumWorkers", "blockOpConcurrencyLimitedRuns"}
CHART_CONCURRENCY = {"enabled", "pools", "runs"}
CHART_CONCURRENCY_POOLS = {"defaultLimit", "granularity", "opGranularityRunBuffer"}
CHART_CONCURRENCY_RUNS = {"maxConcurrentRuns", "tagConcurrencyLimits"}
CHART_PYTHON_LOGS = {"managedPythonLoggers", "pythonLogLevel", "dagsterHandlerConfig"}
# The rendering packages of scripts/install-system-packages.sh the image must have too.
RENDERING_PACKAGES = ("libharfbuzz-subset0", "libpango-1.0-0", "libpangoft2-1.0-0",
                      "fonts-dejavu-core", "fonts-noto-cjk", "fonts-noto-core")


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def _unknown(block: dict, documented: set[str]) -> list[str]:
    return sorted(set(block) - documented)


def _extra(values: dict, kind: str, name: str) -> dict:
    [manifest] = [item for item in values["extraManifests"]
                  if item["kind"] == kind and item["metadata"]["name"] == name]
    return manifest


def test_every_key_is_one_the_chart_documents_where_it_documents_it(values):
    deployments = values["dagster-user-deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]

    assert _unknown(values, CHART_TOP_LEVEL) == []
    assert _unknown(values["global"], CHART_GLOBAL) == []
    assert _unknown(values["dagsterWebserver"], CHART_WEBSERVER) == []
    assert _unknown(values["dagsterWebserver"]["image"], CHART_IMAGE) == []
    assert _unknown(deployments, CHART_USER_DEPLOYMENTS) == []
    for deployment in deployments["deployments"]:
        assert _unknown(deployment, CHART_USER_DEPLOYMENT) == []
        assert _unknown(deployment["image"], CHART_IMAGE) == []
    assert _unknown(launcher, CHART_K8S_RUN_LAUNCHER) == []
    assert _unknown(launcher["runK8sConfig"], CHART_RUN_K8S_CONFIG) == []
    assert _unknown(values["postgresql"], CHART_POSTGRESQL) == []
    assert _unknown(values["dagsterDaemon"], CHART_DAEMON) == []
    assert _unknown(coordinator, CHART_QUEUED_RUN_COORDINATOR) == []
    assert _unknown(values["concurrency"], CHART_CONCURRENCY) == []
    assert _unknown(values["concurrency"]["pools"], CHART_CONCURRENCY_POOLS) == []
    assert _unknown(values["concurrency"]["runs"], CHART_CONCURRENCY_RUNS) == []
    assert _unknown(values["pythonLogs"], CHART_PYTHON_LOGS) == []


def test_the_run_launcher_type_has_its_config_block(values):
    launcher = values["runLauncher"]

    assert launcher["type"] in CHART_RUN_LAUNCHER_TYPES
    assert set(launcher["config"]) == {CHART_RUN_LAUNCHER_TYPES[launcher["type"]]}


def test_the_user_code_deployment_serves_the_code_location_dagster_loads(values):
    """The module of pyproject's [tool.dagster], from a pinned image tag."""
    dagster = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]
    [deployment] = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]

    assert values["dagster-user-deployments"]["enabled"] is True
    assert args[args.index("--module-name") + 1] == dagster["module_name"]
    assert deployment["image"]["repository"] and deployment["image"]["tag"] not in ("", "latest")
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}


def test_the_instance_is_an_external_postgres_with_its_password_in_a_secret(values):
    postgres = values["postgresql"]

    assert postgres["enabled"] is False and postgres["postgresqlHost"]
    assert postgres["postgresqlPassword"] == ""
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert values["telemetry"] == {"enabled": False}


def test_the_limits_and_loggers_are_those_of_the_postgres_instance_file(values):
    """Helm renders the instance's dagster.yaml; it must limit what the tested file limits."""
    instance = yaml.safe_load(INSTANCE_YAML.read_text())
    runs, pools = instance["concurrency"]["runs"], instance["concurrency"]["pools"]
    helm = values["concurrency"]

    assert helm["enabled"] is True
    assert helm["runs"]["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert helm["runs"]["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert helm["pools"]["defaultLimit"] == pools["default_limit"]
    assert helm["pools"]["granularity"] == pools["granularity"]
    assert (values["pythonLogs"]["managedPythonLoggers"]
            == instance["python_logs"]["managed_python_loggers"])


def test_every_q2c_setting_the_config_map_sets_is_one_q2c_reads(values):
    config = _extra(values, "ConfigMap", "q2c-config")["data"]
    sources = "".join(path.read_text() for folder in ("q2c", "orchestration", "assets")
                      for path in (REPO / folder).rglob("*.py"))

    names = [name for name in config if name.startswith("Q2C_")]
    assert names and [name for name in names if f'"{name}"' not in sources] == []


def test_the_celery_workers_run_the_tested_worker_config_from_the_image(values):
    worker = _extra(values, "Deployment", "q2c-celery-workers")
    [container] = worker["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    workdir = re.search(r"^WORKDIR (\S+)$", DOCKERFILE.read_text(), re.MULTILINE).group(1)

    assert command[:5] == ["dagster-celery", "worker", "start", "-A", "dagster_celery.app"]
    assert command[command.index("-y") + 1] == f"{workdir}/deploy/celery-worker.yaml"
    assert command[command.index("--concurrency") + 1] == "1"


def test_the_worker_config_passes_dagster_celerys_validation(monkeypatch):
    """`dagster-celery worker start -y` validates the file this way before it starts."""
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("Q2C_CELERY_BROKER", "redis://redis.internal:6379/0")
    monkeypatch.setenv("Q2C_CELERY_BACKEND", "redis://redis.internal:6379/1")
    config = get_validated_config(str(WORKER_YAML))

    assert config["broker"] == "redis://redis.internal:6379/0"
    assert config["backend"] == "redis://redis.internal:6379/1"
    assert config["config_source"] == {"worker_prefetch_multiplier": 1,
                                       "task_acks_late": True}


def test_the_stripe_endpoint_is_public_at_one_path_and_served_by_q2c(values):
    ingress = _extra(values, "Ingress", "q2c-webhooks")
    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    server = _extra(values, "Deployment", "q2c-webhooks")
    [container] = server["spec"]["template"]["spec"]["containers"]

    assert (path["path"], path["pathType"]) == ("/stripe", "Exact")
    assert path["backend"]["service"]["name"] == "q2c-webhooks"
    assert container["command"][:3] == ["q2c", "webhooks", "serve"]


def test_the_image_has_the_rendering_packages_and_the_python_q2c_supports():
    dockerfile = DOCKERFILE.read_text()
    script = (REPO / "scripts" / "install-system-packages.sh").read_text()
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]

    python = re.search(r"^FROM python:(\d+\.\d+)-", dockerfile, re.MULTILINE).group(1)

    assert all(package in script and package in dockerfile for package in RENDERING_PACKAGES)
    assert SpecifierSet(requires).contains(python)
