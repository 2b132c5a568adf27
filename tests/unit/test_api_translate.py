"""The REST API's translations, without a service: docker's create body → RunOptions (what docker's
CLI and docker-py really send), detach keys on a hijacked stream, docker's frames and filters."""

from __future__ import annotations

import socket
import struct

import pytest

from rootlet.cli.api.createbody import run_options
from rootlet.cli.api.http import Connection, HttpError
from rootlet.cli.api.streams import HijackedClient, detach_sequence, frame

#: What docker's CLI 28 sends for `docker run --rm alpine true` (API 1.41), zero values included.
CLI_BODY = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
    "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": [], "Cmd": ["true"], "Image": "alpine",
    "Volumes": {}, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": {},
    "HostConfig": {"Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
                   "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                   "AutoRemove": True, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [30, 100],
                   "CapAdd": None, "CapDrop": None, "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [],
                   "ExtraHosts": None, "GroupAdd": None, "IpcMode": "", "Cgroup": "", "Links": None,
                   "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
                   "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 0,
                   "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "",
                   "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
                   "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0,
                   "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
                   "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0,
                   "MemorySwappiness": -1, "OomKillDisable": False, "PidsLimit": 0, "Ulimits": [], "CpuCount": 0,
                   "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None,
                   "ReadonlyPaths": None},
    "NetworkingConfig": {"EndpointsConfig": {}},
}


def test_docker_clis_zero_values_are_the_defaults() -> None:
    opts = run_options(CLI_BODY, None, None)
    assert (opts.image, opts.command, opts.rm, opts.pull, opts.network, opts.volumes) == \
        ("alpine", ("true",), True, "never", None, ())


def test_docker_fields_become_the_clis_syntax() -> None:
    body = {"Image": "alpine", "Cmd": "echo hi", "Entrypoint": ["sh", "-c"], "Env": ["A=1", "UNSET"],
            "Volumes": {"/data": {}, "/anon": {}}, "Labels": {"k": "v"}, "User": "1:2", "WorkingDir": "/w",
            "HostConfig": {"Binds": ["vol:/data:ro"], "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1",
                                                                                    "HostPort": "8080"}],
                                                                       "53/udp": [{"HostPort": ""}]},
                           "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                           "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}], "Tmpfs": {"/t": "size=1m"},
                           "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}, "NetworkMode": "host",
                           "Mounts": [{"Type": "bind", "Source": "/src", "Target": "/dst", "ReadOnly": True}]}}
    opts = run_options(body, "named", "linux/amd64")
    assert opts.command == ("echo hi",) and opts.entrypoint == '["sh", "-c"]'
    assert opts.env == ("A=1",)  # a bare name is what docker's CLI sends for an unset variable
    assert opts.volumes == ("vol:/data:ro", "/anon")  # /data is the bind's, not a second mount
    assert set(opts.publish) == {"127.0.0.1:8080:80/tcp", "53/udp"}
    assert (opts.restart, opts.ulimits, opts.tmpfs, opts.network) == ("on-failure:3", ("nofile=10:20",), ("/t:size=1m",),
                                                                      "host")
    assert opts.mounts == ("type=bind,target=/dst,source=/src,readonly",)
    assert (opts.log_driver, opts.log_opts, opts.labels, opts.name) == (None, ("max-size=1m",), ("k=v",), "named")
    assert run_options({"Image": "a", "Entrypoint": [""]}, None, None).entrypoint == ""


@pytest.mark.parametrize("body, words", [
    ({"Image": "a", "Nope": 1}, "Nope"),
    ({"Image": "a", "HostConfig": {"Nope": 1}}, "HostConfig.Nope"),
    ({"Image": "a", "HostConfig": {"CpuShares": 5}}, "HostConfig.CpuShares"),
    ({"Image": "a", "HostConfig": {"PidMode": "host"}}, "PidMode"),
    ({"Image": "a", "HostConfig": {"Privileged": "yes"}}, "Privileged"),
    ({"Image": "a", "HostConfig": {"NetworkMode": "bridge"}, "NetworkingConfig": {"EndpointsConfig": {"n1": {}}}},
     "HostConfig.NetworkMode"),
    ({"Image": "a", "NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["x"]}}}}, "user-defined"),
    ({"Image": 5}, "Image"),
])
def test_what_cannot_be_honoured_is_refused_naming_it(body: dict, words: str) -> None:
    with pytest.raises(HttpError) as info:
        run_options(body, None, None)
    assert info.value.status in (400, 404) and words in info.value.message


def test_user_networks_with_aliases_and_an_address_for_the_first() -> None:
    body = {"Image": "a", "HostConfig": {"NetworkMode": "proj_default"},
            "NetworkingConfig": {"EndpointsConfig": {"proj_default": {"Aliases": ["web", "abc"],
                                                                      "IPAMConfig": {"IPv4Address": "10.89.3.9"}},
                                                     "other": None}}}
    opts = run_options(body, None, None)
    assert (opts.network, opts.network_aliases, opts.ip) == ("proj_default,other", ("web", "abc"), "10.89.3.9")
    with pytest.raises(HttpError):
        run_options({**body, "NetworkingConfig": {"EndpointsConfig": {"other": {"Aliases": ["x"]}}}}, None, None)


def test_healthchecks() -> None:
    opts = run_options({"Image": "a", "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000,
                                                      "Retries": 3}}, None, None)
    assert (opts.health_cmd, opts.health_interval, opts.health_retries) == ('["CMD-SHELL", "true"]', "2000000000ns", "3")
    assert run_options({"Image": "a", "Healthcheck": {"Test": ["NONE"]}}, None, None).no_healthcheck


def test_limits_are_passed_on_for_the_engine_to_refuse() -> None:
    opts = run_options({"Image": "a", "HostConfig": {"Memory": 1 << 26, "NanoCpus": 1_500_000_000}}, None, None)
    assert (opts.memory, opts.cpus) == (str(1 << 26), "1.5")


def test_detach_keys() -> None:
    assert detach_sequence(None) == b"\x10\x11"
    assert detach_sequence("a,ctrl-@,ctrl-\\") == b"a\x00\x1c"
    with pytest.raises(HttpError):
        detach_sequence("ctrl-1")


def _client(data: bytes, tty: bool = True) -> tuple[HijackedClient, socket.socket]:
    ours, theirs = socket.socketpair()
    theirs.sendall(data)
    theirs.shutdown(socket.SHUT_WR)
    return HijackedClient(Connection(ours), tty, detach_sequence("ctrl-p,ctrl-q")), theirs


def test_detach_keys_end_the_attach_and_other_bytes_pass() -> None:
    client, _peer = _client(b"ab\x10c\x10\x11zz")
    assert client.read_input() == b"ab\x10c"
    assert client.gone
    client, _peer = _client(b"x\x10")
    assert client.read_input() == b"x"  # the ctrl-p is held: it may start the sequence
    assert client.read_input() == b"\x10"  # the input ended: it was input after all
    assert client.read_input() == b""


def test_frames_without_a_tty_raw_with_one() -> None:
    assert frame("stderr", b"hi") == struct.pack(">BxxxL", 2, 2) + b"hi"
    client, peer = _client(b"", tty=False)
    client.write("stdout", b"out")
    assert peer.recv(100) == b"\x01\x00\x00\x00\x00\x00\x00\x03out"
