"""The deployment artifacts: Kubernetes manifests (schema-validated) and the Containerfile
(hadolint), and that they fit what the server needs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kes_flask.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.31"


def documents() -> list[dict]:
    docs = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in documents() if doc["kind"] == kind}


@pytest.mark.parametrize(
    "document", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_manifests_validate_against_the_kubernetes_schema(document: dict):
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def sidecar() -> dict:
    pod = by_kind("StatefulSet")["minio"]["spec"]["template"]["spec"]
    (container,) = [c for c in pod["initContainers"] if c["name"] == "kes-flask"]
    return container


def kes_config() -> object:
    text = by_kind("ConfigMap")["kes-flask-config"]["data"]["config.yml"]
    return parse_config(text, {"MINIO_IDENTITY": "a" * 64}, "kes-flask-config")


def test_every_referenced_secret_and_config_map_is_defined():
    pod = by_kind("StatefulSet")["minio"]["spec"]["template"]["spec"]
    secrets, config_maps = set(by_kind("Secret")), set(by_kind("ConfigMap"))
    for volume in pod["volumes"]:
        if "secret" in volume:
            assert volume["secret"]["secretName"] in secrets
        if "configMap" in volume:
            assert volume["configMap"]["name"] in config_maps
    for container in pod["containers"] + pod["initContainers"]:
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in by_kind("Secret")[ref["name"]]["stringData"]


def test_kes_flask_is_a_native_sidecar_with_probes_on_unauthenticated_routes():
    container = sidecar()
    assert container["restartPolicy"] == "Always"  # started (and ready) before MinIO
    config = kes_config()
    port = int(config.address.rsplit(":", 1)[1])
    assert container["ports"][0]["containerPort"] == port
    for probe in ("startupProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert (http["scheme"], http["path"]) == ("HTTPS", "/v1/ready")
        assert config.api[http["path"]].skip_auth  # the kubelet presents no client certificate
    assert container["livenessProbe"]["httpGet"]["path"] == "/version"  # never authenticated
    annotations = by_kind("StatefulSet")["minio"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/v1/metrics"
    assert config.api["/v1/metrics"].skip_auth


def test_paths_in_the_config_are_mounted():
    container = sidecar()
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config = kes_config()
    assert any(config.keystore.path.startswith(path + "/") for path in mounts)  # keys on a volume
    assert not mounts[next(p for p in mounts if config.keystore.path.startswith(p))].get("readOnly")
    for tls_file in (config.tls.key, config.tls.cert):
        assert any(tls_file.startswith(path + "/") for path in mounts), tls_file
    config_path = container["args"][container["args"].index("--config") + 1]
    assert config_path in mounts
    assert config.keys == ("minio-default-key",)
    minio = by_kind("StatefulSet")["minio"]["spec"]["template"]["spec"]["containers"][0]
    env = {v["name"]: v.get("value") for v in minio["env"]}
    assert env["MINIO_KMS_KES_KEY_NAME"] == config.keys[0]
    assert env["MINIO_KMS_KES_ENDPOINT"] == f"https://{config.address}"


def test_memory_locking_has_its_capability():
    container = sidecar()
    assert "--mlock" in container["args"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_containerfile_passes_hadolint_and_matches_the_manifest():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    containerfile = ROOT / "deploy" / "Containerfile"
    result = subprocess.run([hadolint, str(containerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = containerfile.read_text().splitlines()
    entrypoint = json.loads(next(line for line in lines if line.startswith("ENTRYPOINT "))[11:])
    cmd = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    assert entrypoint + cmd == ["kes-flask", "server", "--config", "/etc/kes-flask/config.yml"]
    assert sidecar()["args"][:3] == cmd  # the manifest passes the same config path
    assert "USER 10001:10001" in lines
    pod = by_kind("StatefulSet")["minio"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001
