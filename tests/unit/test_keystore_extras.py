"""Optional extras: a cloud keystore without its SDK stops start-up with the install command."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from kes_flask.config.errors import ConfigError
from kes_flask.keystore.extras import EXTRAS, import_sdk, install_hint

ROOT = Path(__file__).resolve().parents[2]


def extras() -> dict[str, list[str]]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    section = parser["options.extras_require"]
    return {name: [r for r in section[name].splitlines() if r.strip()] for name in section}


@pytest.mark.parametrize("kind", sorted(EXTRAS))
def test_a_missing_sdk_names_the_backend_and_the_pip_line(kind: str):
    with pytest.raises(ConfigError) as caught:
        import_sdk(kind, "kes_flask_no_such_sdk.sub")
    message = str(caught.value)
    assert f"run pip install 'kes-flask[{kind}]'" in message
    assert f"keystore.{kind}." in message
    assert "'kes_flask_no_such_sdk'" in message


def test_an_installed_sdk_is_returned():
    assert import_sdk("aws", "json").dumps([]) == "[]"


def test_the_import_is_lazy_and_reports_the_blocked_module():
    """In a fresh interpreter with boto3 made unimportable, the helper names boto3 itself."""
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "import kes_flask.keystore, kes_flask.keystore.extras as e\n"
        "assert 'boto3' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "try:\n    e.import_sdk('aws', 'boto3')\n"
        "except Exception as err:\n    print(type(err).__name__, err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ConfigError keystore AWS Secrets Manager")
    assert "'boto3'" in out.stdout and install_hint("aws") in out.stdout


def test_setup_cfg_extras_and_the_test_extra_installs_them_all():
    declared = extras()
    assert any(r.startswith("boto3") for r in declared["aws"])
    assert {r.split(">")[0] for r in declared["gcp"]} == {
        "google-cloud-secret-manager",
        "google-auth",
    }
    assert {r.split(">")[0] for r in declared["azure"]} == {
        "azure-identity",
        "azure-keyvault-secrets",
    }
    assert "kes-flask[azure,aws,gcp]" in declared["test"]
    assert any(r.startswith("moto[server]") for r in declared["test"])
    assert set(EXTRAS) <= set(declared)


def test_the_container_image_installs_every_extra():
    text = (ROOT / "deploy" / "Containerfile").read_text()
    wanted = ",".join(sorted(EXTRAS, key=["azure", "aws", "gcp"].index))
    assert f"pip wheel --no-cache-dir --wheel-dir /wheels '.[{wanted}]'" in text
    assert f"'kes-flask[{wanted}]==" in text


def test_an_aws_config_without_boto3_stops_with_the_pip_line():
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "from kes_flask.config.model import AWSKeystoreConfig\n"
        "from kes_flask.keystore import open_keystore\n"
        "try:\n    open_keystore(AWSKeystoreConfig(endpoint='e', region='r'))\n"
        "except Exception as err:\n    print(type(err).__name__, err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ConfigError keystore AWS Secrets Manager")
    assert out.stdout.rstrip().endswith("run pip install 'kes-flask[aws]'")
