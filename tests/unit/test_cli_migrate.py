"""``kes-flask migrate``: byte-for-byte copies between real keystores, never overwriting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kes_flask.cli.main import main
from kes_flask.keystore.fs import FSKeystore
from kes_flask.keystore.memory import MemoryKeystore
from kes_flask.keystore.migrate import MigrationConflict, matching_names, migrate_keys
from tests.kes_server import PKI, config_yaml

GO_KEYS = Path(__file__).resolve().parent.parent / "data" / "go-kes" / "keys"


def _store(tmp_path: Path, pki: PKI, name: str, golden: bool = False) -> tuple[str, Path]:
    directory = tmp_path / name
    if golden:
        shutil.copytree(GO_KEYS, directory)
    else:
        directory.mkdir()
    config = tmp_path / f"{name}.yml"
    config.write_text(config_yaml(pki, str(directory)))
    return str(config), directory


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["migrate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_copies_go_written_keys_byte_for_byte(tmp_path, pki, capsys):
    source, source_dir = _store(tmp_path, pki, "source", golden=True)
    target, target_dir = _store(tmp_path, pki, "target")
    code, out, err = _run(capsys, "--from", source, "--to", target)
    assert (code, err) == (0, "")
    assert _files(target_dir) == _files(source_dir) and _files(source_dir)
    count = len(_files(source_dir))
    assert out.startswith("Starting key migration:\n\n")
    assert f"Migrated {count:6d} keys successfully!" in out
    assert f"Summary: {count} matching, {count} migrated, 0 skipped, 0 vanished" in out


def test_existing_keys_are_skipped_and_reported_never_overwritten(tmp_path, pki, capsys):
    source, source_dir = _store(tmp_path, pki, "source", golden=True)
    target, target_dir = _store(tmp_path, pki, "target")
    taken = sorted(_files(source_dir))[0]
    (target_dir / taken).write_bytes(b"the target's own key")
    code, out, _ = _run(capsys, "--from", source, "--to", target, "--merge")
    assert code == 0
    assert (target_dir / taken).read_bytes() == b"the target's own key"
    assert f"already at the target: {taken}" in out
    others = {k: v for k, v in _files(source_dir).items() if k != taken}
    assert {k: v for k, v in _files(target_dir).items() if k != taken} == others


def test_strict_refuses_before_copying_anything(tmp_path, pki, capsys):
    source, source_dir = _store(tmp_path, pki, "source", golden=True)
    target, target_dir = _store(tmp_path, pki, "target")
    taken = sorted(_files(source_dir))[-1]
    (target_dir / taken).write_bytes(b"mine")
    code, _, err = _run(capsys, "--from", source, "--to", target, "--strict")
    assert code == 1
    assert err.startswith("Error: 1 key(s) already exist at the target: " + taken)
    assert "--strict" in err
    assert _files(target_dir) == {taken: b"mine"}


def test_dry_run_writes_nothing_and_json_reports_counts(tmp_path, pki, capsys):
    source, source_dir = _store(tmp_path, pki, "source", golden=True)
    target, target_dir = _store(tmp_path, pki, "target")
    taken = sorted(_files(source_dir))[0]
    (target_dir / taken).write_bytes(b"x")
    code, out, _ = _run(capsys, "--from", source, "--to", target, "--dry-run", "--json")
    assert code == 0
    report = json.loads(out)
    names = sorted(_files(source_dir))
    assert report == {
        "dry_run": True,
        "matched": len(names),
        "migrated": len(names) - 1,
        "skipped": 1,
        "vanished": 0,
        "migrated_keys": names[1:],
        "skipped_keys": [taken],
        "vanished_keys": [],
    }
    assert _files(target_dir) == {taken: b"x"}


def test_pattern_is_a_glob(tmp_path, pki, capsys):
    source, source_dir = _store(tmp_path, pki, "source")
    for name in ("minio-a", "minio-b", "tenant-minio", "minio"):
        (source_dir / name).write_bytes(name.encode())
    target, target_dir = _store(tmp_path, pki, "target")
    code, out, _ = _run(capsys, "--from", source, "--to", target, "minio-?")
    assert code == 0
    assert sorted(_files(target_dir)) == ["minio-a", "minio-b"]
    code, out, _ = _run(capsys, "--from", source, "--to", target, "nothing-*")
    assert code == 0 and "Migration succeeded! No keys migrated." in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to", "t.yml"], "Error: no source specified. Use '--from' flag\n"),
        (["--from", "s.yml"], "Error: missing migration target. Use '--to' flag\n"),
        (["--from", "s", "--to", "t", "-f"], "Error: '--force' is not supported: kes-flask never"),
        (["--from", "s", "-s", "host:7373"], "Error: migrating to a MinIO KMS server is not"),
        (["--from", "s", "--to", "t", "--strict", "--merge"], "Error: '--strict' and '--merge'"),
    ],
)
def test_usage_errors(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith(message)


def test_a_broken_config_names_its_role_and_file(tmp_path, pki, capsys):
    source, _ = _store(tmp_path, pki, "source")
    broken = tmp_path / "broken.yml"
    broken.write_text("admin: [\n")
    code, _, err = _run(capsys, "--from", source, "--to", str(broken))
    assert code == 1
    assert err.startswith(f"Error: target config '{broken}': ")


def test_strict_checks_every_name_before_the_first_copy():
    source, target = MemoryKeystore(), MemoryKeystore()
    source.create("k1", b"v1")
    source.create("k2", b"v2")
    target.create("k2", b"theirs")
    with pytest.raises(MigrationConflict) as raised:
        migrate_keys(source, target, strict=True)
    assert raised.value.names == ["k2"]
    assert target.list("", -1) == (["k2"], "") and target.get("k2") == b"theirs"


def test_a_key_deleted_at_the_source_meanwhile_is_reported(tmp_path):
    source = FSKeystore(str(tmp_path / "s"))
    target = MemoryKeystore()
    source.create("gone", b"1")
    source.create("kept", b"2")
    names = matching_names(source, "*")
    source.delete("gone")
    report = migrate_keys(source, target, names=names)
    assert (report.copied, report.vanished) == (["kept"], ["gone"])
    assert target.get("kept") == b"2"
