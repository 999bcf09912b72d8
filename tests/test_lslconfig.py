"""The loopback-only liblsl configuration: shipped, never overriding the user's, and it resolves a local stream."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eegalign.realtime.lslconfig import ENV, local_config_path


def test_packaged_config_is_loopback_only() -> None:
    text = local_config_path().read_text()
    for line in ("IPv6 = disable", "ResolveScope = machine", "MachineAddresses = {127.0.0.1}", "KnownPeers = {127.0.0.1}"):
        assert line in text
    assert os.environ[ENV]  # conftest sets it for every test


def _run(code: str, env: dict[str, str]) -> str:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**env, "PYTHONPATH": src}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True).stdout


def test_use_local_config_sets_only_when_unset(tmp_path: Path) -> None:
    code = "from eegalign.realtime.lslconfig import use_local_config; print(use_local_config())"
    base = {k: v for k, v in os.environ.items() if k != ENV}
    assert _run(code, base).strip() == str(local_config_path())
    mine = tmp_path / "mine.cfg"
    mine.write_text(local_config_path().read_text())
    assert _run(code, {**base, ENV: str(mine)}).strip() == str(mine)


def test_local_stream_resolves_on_loopback() -> None:
    code = (
        "from eegalign.realtime.lslconfig import use_local_config; use_local_config()\n"
        "import pylsl\n"
        "o = pylsl.StreamOutlet(pylsl.StreamInfo('eegalign-cfg-test', 'EEG', 2, 100, 'float32', 'eegalign-cfg-test'))\n"
        "print(len(pylsl.resolve_byprop('name', 'eegalign-cfg-test', 1, 5.0)))\n"
    )
    assert _run(code, dict(os.environ)).strip().splitlines()[-1] == "1"
