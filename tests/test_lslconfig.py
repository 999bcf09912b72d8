"""The loopback-only liblsl configuration: shipped, never overriding the user's, and it resolves a local stream."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eegalign.realtime.lslconfig import ENV, local_config_path


def test_packaged_config_is_loopback_only() -> None:
    text = local_config_path().read_text()
    for line in ("IPv6 = disable", "ResolveScope = machine", "ListenAddress = 127.0.0.1", "MachineAddresses = {127.0.0.1}",
                 "KnownPeers = {127.0.0.1}"):
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


def test_discovery_listener_binds_loopback_and_data_ports_are_as_documented() -> None:
    """With the packaged config, the multicast (discovery) listener on UDP 16571 is bound to 127.0.0.1; the data
    server's TCP ports are on 0.0.0.0 (liblsl cannot bind them: docs/deployment.md says so). Read from /proc."""
    import pytest

    if not Path("/proc/net/udp").exists():
        pytest.skip("needs Linux /proc/net")
    code = (
        "from eegalign.realtime.lslconfig import use_local_config; use_local_config()\n"
        "import os, time, uuid, pylsl\n"
        "n = 'eegalign-bind-' + uuid.uuid4().hex[:8]\n"
        "o = pylsl.StreamOutlet(pylsl.StreamInfo(n, 'EEG', 2, 100, 'float32', n))\n"
        "assert pylsl.resolve_byprop('name', n, 1, 5.0)\n"
        "time.sleep(0.2)\n"
        "links = []\n"
        "for f in os.listdir(f'/proc/{os.getpid()}/fd'):\n"
        "    try:\n"
        "        links.append(os.readlink(f'/proc/{os.getpid()}/fd/{f}'))\n"
        "    except OSError:\n"
        "        pass  # the directory's own descriptor, closed by now\n"
        "mine = {l[8:-1] for l in links if l.startswith('socket:[')}\n"
        "for proto in ('udp', 'tcp'):\n"
        "    for line in open(f'/proc/net/{proto}').read().splitlines()[1:]:\n"
        "        f = line.split()\n"
        "        if f[9] in mine and (proto == 'udp' or f[3] == '0A'):\n"
        "            print(proto, f[1])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != ENV}
    bound = set(_run(code, env).split("\n"))
    assert "udp 0100007F:40BB" in bound, bound  # 127.0.0.1:16571
    assert "udp 00000000:40BB" not in bound, bound
    assert any(b.startswith("tcp 00000000:") for b in bound), bound  # the data server: all interfaces
