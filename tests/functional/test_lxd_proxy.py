# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The LXD daemon pulls the runner image's source through the model's proxy.

A proxy on 127.0.0.1 records each request line and refuses it (403): nothing leaves the
machine. The image server's name ends in `.invalid` and is only ever sent to that proxy: the test
pulls only once LXD's configuration holds the proxy.

LXD's server configuration is the whole machine's (other test runs share this daemon), so the
test saves the proxy keys, keeps the proxy set for the few seconds of one pull, and puts the
saved values back whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import command
import host
from github_runner_manager.errors import LxdError
from github_runner_manager.lxd import InstanceSpec, PylxdClient
from github_runner_manager.models import InstanceType

from .conftest import PROJECT

pytestmark = pytest.mark.lxd

IMAGE_SERVER = "grt-image-server.invalid"
LXC = "/usr/bin/lxc"


class RefusingProxy:
    """A TCP listener on 127.0.0.1 that records the first line of each request and refuses it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                with contextlib.suppress(OSError):
                    head = connection.recv(4096).decode(errors="replace")
                    self.requests.append(head.split("\r\n", 1)[0])
                    connection.sendall(
                        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )

    def __enter__(self) -> RefusingProxy:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.server.close()


def lxd_config() -> dict[str, Any]:
    return json.loads(command.run_command([LXC, "query", "/1.0"], timeout=60))["config"]


@pytest.fixture
def saved_lxd_proxy() -> Iterator[None]:
    """Put LXD's proxy keys back as they were, whatever the test did."""
    saved = {key: lxd_config().get(key) for key in host.LXD_PROXY_KEYS}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value:
                command.run_command([LXC, "config", "set", key, value], timeout=60)
            elif lxd_config().get(key):
                command.run_command([LXC, "config", "unset", key], timeout=60)


def test_the_daemon_pulls_images_through_the_model_proxy(
    saved_lxd_proxy: None, tmp_path: Path
) -> None:
    """The daemon's image pull goes to the model's proxy.

    arrange: a refusing proxy on loopback.
    act: set it as the model's proxy, pull an image from a remote server, drop the model's proxy.
    assert: the pull went to the proxy, and the settings came and went with the model's.
    """
    runner_host = host.Host(lxd_proxy_record=tmp_path / "lxd-proxy.json")
    adapter = PylxdClient(project=PROJECT, timeout=60)
    spec = InstanceSpec(
        name="grt-proxy-pull",
        instance_type=InstanceType.CONTAINER,
        image="jammy",
        image_server=f"https://{IMAGE_SERVER}",
        profiles=("default",),
        config={},
        devices={},
        ephemeral=False,
    )
    with RefusingProxy() as proxy:
        # The charm's step with a model proxy.
        changed = runner_host.ensure_lxd_proxy(proxy.url, proxy.url, "127.0.0.1,localhost")

        # The daemon has it (only then may it try the server's name).
        config = lxd_config()
        assert config.get("core.proxy_https") == proxy.url
        assert config.get("core.proxy_http") == proxy.url
        assert config.get("core.proxy_ignore_hosts") == "127.0.0.1,localhost"
        assert changed

        # A pull from the remote image server, as an image build from a series does.
        with pytest.raises(LxdError):
            adapter.create_instance(spec)

        # The model's proxy goes.
        assert runner_host.ensure_lxd_proxy(None, None, None)

    # The daemon asked the proxy for the image server (a parallel test run's pull may
    # have come by during those seconds too: LXD's settings are the machine's).
    assert proxy.requests, "the daemon never reached the proxy"
    assert any(line.startswith(f"CONNECT {IMAGE_SERVER}:443 ") for line in proxy.requests), (
        proxy.requests
    )
    config = lxd_config()
    assert not any(config.get(key) for key in host.LXD_PROXY_KEYS)
    assert not runner_host.ensure_lxd_proxy(None, None, None)
