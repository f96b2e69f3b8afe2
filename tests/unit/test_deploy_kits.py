"""The deployment kits hold together: the Kubernetes manifests validate against Kubernetes' own
schemas and point at each other, the systemd unit passes ``systemd-analyze``, the compose
example's mirror reaches its receiver, the lock pins every dependency with hashes, and the
LICENSE is Apache-2.0 as pyproject says."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from okrsync.config import load_config_text
from tests.binaries import require_binary
from tests.shipped import shipped_connectors

ROOT = Path(__file__).parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
UNIT = ROOT / "deploy" / "systemd" / "okrsync.service"
COMPOSE = ROOT / "config" / "examples" / "compose.yml"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor still supported upstream when written


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes by kind (the Kustomization aside)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            out[document["kind"]] = document
    return out


@pytest.mark.parametrize("path", sorted(KUBE.glob("*.yaml")), ids=lambda p: p.name)
def test_each_manifest_validates_strictly(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        if document["kind"] == "Kustomization":
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_strict_validation_catches_a_misspelt_field() -> None:
    service = manifests()["Service"]
    broken = {**service, "spec": {**service["spec"], "selecter": {"app": "okrsync"}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_everything_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    files = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files - {"secret.example.yaml"}


def test_the_manifests_point_at_each_other() -> None:
    kinds = manifests()
    deployment, service = kinds["Deployment"], kinds["Service"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert kinds["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["replicas"] > 1  # a PDB over one replica would block every drain

    (container,) = pod["spec"]["containers"]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["port"] in port_names
    ingress_ports = {
        p["port"] for rule in kinds["NetworkPolicy"]["spec"]["ingress"] for p in rule["ports"]
    }
    assert set(port_names.values()) <= ingress_ports

    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    config_path = Path(env["OKRSYNC_CONFIG"])
    config_volume = next(n for n, v in volumes.items() if "configMap" in v)
    assert mounts[config_volume] == str(config_path.parent)
    assert volumes[config_volume]["configMap"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
    assert config_path.name in kinds["ConfigMap"]["data"]
    secret_volume = next(n for n, v in volumes.items() if "secret" in v)
    assert mounts[secret_volume] == env["OKRSYNC_SECRETS_DIR"]
    assert volumes[secret_volume]["secret"]["secretName"] == kinds["Secret"]["metadata"]["name"]
    # the image's user (Dockerfile: useradd --uid 10001), never root
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert (
        f"--uid {pod['spec']['securityContext']['runAsUser']} " in (ROOT / "Dockerfile").read_text()
    )
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_configmap_config_loads_with_the_secrets_the_deployment_mounts(tmp_path: Path) -> None:
    kinds = manifests()
    for name, value in kinds["Secret"]["stringData"].items():
        (tmp_path / name).write_text(value)
    config = load_config_text(
        kinds["ConfigMap"]["data"]["okrsync.yaml"],
        shipped_connectors(),
        environ={},
        secrets_dir=tmp_path,
    )
    assert [kr.id for kr in config.key_results()] == ["bookings"]
    assert {"okrsync_database_url", "okrsync_api_token"} <= set(kinds["Secret"]["stringData"])


def unit_entries() -> dict[str, list[str]]:
    """``Key=value`` lines of the unit, every value a key was given (systemd lists repeat)."""
    entries: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def test_the_systemd_unit_is_hardened() -> None:
    entries = unit_entries()
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
        "StateDirectory": "okrsync",
    }.items():
        assert entries.get(key) == [value], key
    # the store's file lives in the only writable place ProtectSystem=strict leaves it
    env = dict(e.split("=", 1) for e in entries["Environment"])
    assert env["OKRSYNC_DATABASE_URL"] == "sqlite:////var/lib/okrsync/okrsync.db"
    assert env["OKRSYNC_SECRETS_DIR"] == "%d"  # the credentials LoadCredential= brings in
    credentials = {c.split(":", 1)[0] for c in entries["LoadCredential"]}
    assert {"okrsync_database_url", "okrsync_api_token"} <= credentials


def _unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with ExecStart on this checkout's okrsync, which systemd checks exists."""
    okrsync = Path(sys.executable).with_name("okrsync")
    assert okrsync.exists(), okrsync
    copy = tmp_path / "okrsync.service"
    copy.write_text(UNIT.read_text().replace("/opt/okrsync/bin/okrsync", str(okrsync)))
    return copy


def test_systemd_analyze_verifies_the_unit_and_rates_it_ok(tmp_path: Path) -> None:
    analyze = require_binary(
        Path("/usr/bin/systemd-analyze"), "systemd-analyze is missing (apt-get install systemd)"
    )
    unit = _unit_for_this_machine(tmp_path)
    verified = subprocess.run(
        [str(analyze), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    # exposure 0.0 (best) to 10.0; the threshold is in tenths: above 2.0 fails
    rated = subprocess.run(
        [str(analyze), "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rated.returncode == 0, rated.stdout[-2000:] + rated.stderr
    assert "Overall exposure level" in rated.stdout


def test_the_units_command_line_is_one_okrsync_accepts() -> None:
    (exec_start,) = unit_entries()["ExecStart"]
    _program, command, *options = exec_start.split()
    helped = subprocess.run(
        [str(Path(sys.executable).with_name("okrsync")), command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert helped.returncode == 0, helped.stderr
    for option in options:
        if option.startswith("--"):
            assert option in helped.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_compose_mirror_posts_to_its_receiver_service() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    okrsync = services["okrsync"]
    hook_url = httpx.URL(okrsync["environment"]["HOOK_URL"])
    assert hook_url.host in services and hook_url.host not in ("127.0.0.1", "localhost")
    assert hook_url.host in okrsync["depends_on"]
    receiver = services[hook_url.host]
    assert str(hook_url.port) == receiver["command"][receiver["command"].index("--port") + 1]
    # the mounted config's mirror goes where HOOK_URL says
    (mount,) = okrsync["volumes"]
    source, target, _ = mount.split(":")
    assert target == "/etc/okrsync/okrsync.yaml"
    secrets = {name: "placeholder" for name in okrsync["secrets"]}
    config = load_config_text(
        (COMPOSE.parent / source).read_text(),
        shipped_connectors(),
        environ={**secrets, "HOOK_URL": str(hook_url)},
    )
    assert config.connections["hook"].model_dump()["url"] == str(hook_url)
    assert set(okrsync["secrets"]) <= set(compose["secrets"])


def test_the_compose_receiver_command_serves_and_takes_a_delivery() -> None:
    receiver = yaml.safe_load(COMPOSE.read_text())["services"]["receiver"]
    port = _free_port()
    command = [*receiver["entrypoint"], *receiver["command"]]
    command = [arg if arg != "0.0.0.0" else "127.0.0.1" for arg in command]
    command[command.index("--port") + 1] = str(port)
    uvicorn = shutil.which(command[0], path=str(Path(sys.executable).parent))
    assert uvicorn is not None
    process = subprocess.Popen(
        [uvicorn, *command[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(f"{base}/_received", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.05)
        posted = httpx.post(f"{base}/okr", json={"event": "key_result.updated"}, timeout=5)
        assert posted.status_code == 200
        assert httpx.get(f"{base}/_received", timeout=5).json()["count"] == 1
    finally:
        process.terminate()
        process.wait(timeout=10)


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]).lower()


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lock = (ROOT / "requirements.lock").read_text()
    pinned: dict[str, int] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock):
        first = block.splitlines()[0]
        if "==" in first:
            pinned[_name(first)] = block.count("--hash=sha256:")
    wanted = {_name(r) for r in project["project"]["dependencies"]}
    wanted |= {_name(r) for r in project["build-system"]["requires"]}
    missing = wanted - set(pinned)
    assert not missing, f"requirements.lock lacks {missing}: regenerate it (command at its top)"
    assert all(count > 0 for count in pinned.values()), pinned
    assert "--find-links" not in lock and "/opt/" not in lock  # nothing of this machine


def test_license_is_the_apache_text_pyproject_names() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == {"text": "Apache-2.0"}
    shipped = Path("/usr/share/common-licenses/Apache-2.0")
    if shipped.exists():
        assert license_text == shipped.read_text()


def test_changelog_keeps_the_format() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n")
    assert "keepachangelog.com" in text
    sections = re.findall(r"^## \[([^\]]+)\]", text, flags=re.MULTILINE)
    assert sections and sections[0] == "Unreleased"
    kinds = set(re.findall(r"^### (\w+)", text, flags=re.MULTILINE))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
