# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runner image build on real LXD, with the real build script and the real apt path.

No mirror is reachable from the test instances (their bridge has no address), so the test serves
a stub Debian repository itself, on 127.0.0.1, acting as the model's HTTP proxy: the build
writes that proxy into the builder's apt configuration, the builder reaches it through an LXD
proxy device bound inside it (the manager adds one for every loopback URL the build uses), and
apt fetches the release file, the package index and one stub package (`dpkg-deb --build`) for
every package the script installs. yq comes as a checksum-verified download from the same
server. Nothing is skipped: the package step runs for real.

The source image is the test bed's `github-runner-test` (Debian bookworm) with two changes a
mirror of our own would need: its sources.list marks the (unsigned) stub repository trusted,
and a stub `unattended-upgrades` is installed so the build has something to purge.

Every image, alias and instance made here is deleted at the end (images are shared between LXD
projects on this machine, so their aliases carry the `grt-imgtest-` prefix).
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import hashlib
import http.server
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pylxd
import pytest

import service
from github_runner_manager import lxd as lxd_module
from github_runner_manager.config import ManagerConfig
from github_runner_manager.errors import LxdError
from github_runner_manager.image import DEFAULT_PACKAGES, ImageBuilder, stable_alias
from github_runner_manager.lxd import InstanceSpec, PylxdClient
from github_runner_manager.models import InstanceType

from .conftest import IMAGE, PROJECT, TEST_REPO, TEST_TOKEN, run_in, wait_for_boot
from .test_charm_service import SYSTEMD_ANALYZE, NoSystemd, unit_directives

pytestmark = pytest.mark.lxd

PREFIX = f"grt-imgtest-{secrets.token_hex(3)}"
SUITE = "bookworm"
SOURCES_LIST = f"deb [trusted=yes] http://deb.debian.org/debian {SUITE} main\n"
STUB_VERSION = "0.0~grt1"  # below any real version: installed real packages stay as they are
YQ_STUB = b'#!/bin/sh\necho "yq (github-runner test stub) version v4"\n'
CHARM_DIR = Path(__file__).resolve().parents[2]
SRC_DIR = CHARM_DIR / "src"


# ----- a stub Debian repository behind an HTTP proxy on loopback ----------------------------


# The stub npm records its calls and "installs" a stub yarn: the build's npm step runs for real.
NPM_STUB = """#!/bin/sh
echo "$*" >> /var/log/grt-npm-calls
if [ "$*" = "install --global yarn" ]; then
    printf '#!/bin/sh\\necho 1.22.22-grt-stub\\n' > /usr/local/bin/yarn
    chmod 0755 /usr/local/bin/yarn
fi
"""
STUB_FILES = {"npm": {"usr/bin/npm": NPM_STUB}}

# The runner application's dependencies (one candidate of each group the build script knows),
# each with a stand-in for the library the build checks for.
RUNNER_DEPENDENCY_STUBS = {
    "liblttng-ust1": "usr/lib/grt-stub/liblttng-ust.so.1",
    "libkrb5-3": "usr/lib/grt-stub/libkrb5.so.3",
    "zlib1g": "usr/lib/grt-stub/libz.so.1",
    "libssl3": "usr/lib/grt-stub/libssl.so.3",
    "libicu72": "usr/lib/grt-stub/libicuuc.so.72",
}


def build_stub_deb(work: Path, package: str, arch: str = "all") -> Path:
    """Build a Debian package named `package` with dpkg-deb: empty, or with STUB_FILES."""
    root = work / f"{package}-root"
    (root / "DEBIAN").mkdir(parents=True)
    if package in RUNNER_DEPENDENCY_STUBS:
        library = root / RUNNER_DEPENDENCY_STUBS[package]
        library.parent.mkdir(parents=True, exist_ok=True)
        library.write_text(f"stand-in library of {package}\n")
    (root / "usr/share/doc" / package).mkdir(parents=True)
    (root / "usr/share/doc" / package / "README.stub").write_text(f"stub of {package}\n")
    for path, content in STUB_FILES.get(package, {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
        (root / path).chmod(0o755)
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\n"
        f"Version: {STUB_VERSION}\n"
        f"Architecture: {arch}\n"
        "Maintainer: github-runner tests <tests@example.invalid>\n"
        f"Description: stub of {package} for the runner image build test\n"
    )
    deb = work / f"{package}_{STUB_VERSION.replace('~', '_')}_{arch}.deb"
    subprocess.run(
        ["/usr/bin/dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return deb


def stub_repository(work: Path, packages: list[str], arch: str) -> dict[str, bytes]:
    """The files of a one-component repository: path under the archive root → content."""
    files: dict[str, bytes] = {}
    stanzas = []
    for package in packages:
        data = build_stub_deb(work, package).read_bytes()
        filename = f"pool/main/{package}_{STUB_VERSION}_all.deb"
        files[filename] = data
        stanzas.append(
            f"Package: {package}\nVersion: {STUB_VERSION}\nArchitecture: all\n"
            "Maintainer: github-runner tests <tests@example.invalid>\nInstalled-Size: 1\n"
            f"Filename: {filename}\nSize: {len(data)}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
            f"Description: stub of {package}\n"
        )
    index = "\n".join(stanzas).encode()
    lists = {
        f"main/binary-{arch}/Packages": index,
        f"main/binary-{arch}/Packages.gz": gzip.compress(index),
    }
    checksums = "".join(
        f" {hashlib.sha256(body).hexdigest()} {len(body)} {name}\n" for name, body in lists.items()
    )
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S UTC")
    release = (
        f"Origin: grt-imgtest\nLabel: grt-imgtest\nSuite: {SUITE}\nCodename: {SUITE}\n"
        f"Date: {date}\nArchitectures: {arch}\nComponents: main\n"
        f"Description: stub repository of the image build test\nSHA256:\n{checksums}"
    )
    files[f"dists/{SUITE}/Release"] = release.encode()
    for name, body in lists.items():
        files[f"dists/{SUITE}/{name}"] = body
    return files


class RepositoryProxy:
    """An HTTP server on 127.0.0.1 answering both as a proxy (absolute URIs) and directly.

    Whatever host apt asks the proxy for, it gets the stub repository (`/debian/...`); `/yq/...`
    serves the yq stub. Every request line is recorded.
    """

    def __init__(self, repository: dict[str, bytes], downloads: dict[str, bytes]):
        self.repository = repository
        self.downloads = downloads
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                path = unquote(urlsplit(self.path).path)
                body = None
                if path.startswith("/debian/"):
                    body = outer.repository.get(path.removeprefix("/debian/"))
                elif path.startswith("/yq/"):
                    body = outer.downloads.get(path.removeprefix("/yq/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RepositoryProxy:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----- fixtures -----------------------------------------------------------------------------


def host_arch() -> str:
    return subprocess.run(
        ["/usr/bin/dpkg", "--print-architecture"],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()


@pytest.fixture(scope="module")
def adapter(lxd_client: pylxd.Client) -> PylxdClient:
    return PylxdClient(project=PROJECT, timeout=120)


@pytest.fixture(scope="module")
def repo_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RepositoryProxy]:
    work = tmp_path_factory.mktemp("stub-repo")
    packages = sorted({*DEFAULT_PACKAGES, *RUNNER_DEPENDENCY_STUBS})
    repository = stub_repository(work, packages, host_arch())
    with RepositoryProxy(repository, {f"yq_linux_{host_arch()}": YQ_STUB}) as proxy:
        yield proxy


def delete_test_images(adapter: PylxdClient) -> None:
    for image in adapter.list_images():
        if any(alias.startswith(PREFIX) for alias in image.aliases):
            adapter.delete_image(image.fingerprint)


@pytest.fixture(scope="module")
def source_image(
    lxd_client: pylxd.Client, adapter: PylxdClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The test image, trusting the stub repository and with a stub unattended-upgrades."""
    alias = f"{PREFIX}-src"
    name = f"{PREFIX}-src"
    deb = build_stub_deb(tmp_path_factory.mktemp("uu"), "unattended-upgrades")
    instance = lxd_client.instances.create(
        {"name": name, "source": {"type": "image", "alias": IMAGE}, "profiles": ["default"]},
        wait=True,
    )
    try:
        instance.start(wait=True)
        wait_for_boot(instance)
        adapter.push_file(name, "/etc/apt/sources.list", SOURCES_LIST.encode())
        adapter.push_file(name, "/root/unattended-upgrades.deb", deb.read_bytes())
        installed = run_in(instance, ["dpkg", "-i", "/root/unattended-upgrades.deb"])
        assert installed.exit_code == 0, installed.stderr
        assert run_in(instance, ["rm", "/root/unattended-upgrades.deb"]).exit_code == 0
        adapter.stop_instance(name, 60)
        adapter.publish_image(name, alias, {"description": "image build test source"}, 600)
    finally:
        adapter.delete_instance(name)
    try:
        yield alias
    finally:
        delete_test_images(adapter)
        leftovers = [
            alias
            for image in adapter.list_images()
            for alias in image.aliases
            if alias.startswith(PREFIX)
        ]
        assert leftovers == []


def config_data(tmp: Path, source: str, proxy: RepositoryProxy, **image: Any) -> dict[str, Any]:
    return {
        "unit": "grt-imgtest/0",
        "name_prefix": PREFIX,
        "flavor": "grt-imgtest",
        "github": {"path": TEST_REPO, "token": TEST_TOKEN},
        "runners": {
            "containers": 1,
            "base_image": SUITE,
            "cpu": 1,
            "memory": "1GiB",
            "disk": "4GiB",
        },
        "lxd": {"project": PROJECT, "storage_pool": "default"},
        # The stub repository is the model's proxy: the build must honour it inside the builder.
        "proxy": {"http": proxy.url},
        "image": {
            "build": True,
            "source": source,
            "yq_url": f"{proxy.url}/yq/yq_linux_{{arch}}",
            "yq_sha256": {host_arch(): hashlib.sha256(YQ_STUB).hexdigest()},
            "timeout": 600,
            **image,
        },
        "state_dir": str(tmp / "state"),
    }


@pytest.fixture(scope="module")
def config(
    source_image: str, repo_proxy: RepositoryProxy, tmp_path_factory: pytest.TempPathFactory
) -> ManagerConfig:
    tmp = tmp_path_factory.mktemp("image-config")
    return ManagerConfig.model_validate(config_data(tmp, source_image, repo_proxy))


@pytest.fixture(scope="module")
def first_build(config: ManagerConfig, adapter: PylxdClient) -> Any:
    record = ImageBuilder(config, adapter).build()
    assert record.ok, record.errors
    return record


def builders(lxd_client: pylxd.Client) -> list[str]:
    return [i.name for i in lxd_client.instances.all() if i.name.startswith(f"{PREFIX}-builder")]


def versions(adapter: PylxdClient, alias: str) -> dict[str, str]:
    """Versioned alias → fingerprint, for the versions of a stable alias."""
    return {
        name: image.fingerprint
        for image in adapter.list_images()
        for name in image.aliases
        if name.startswith(f"{alias}-") and name.removeprefix(f"{alias}-").isdigit()
    }


@pytest.fixture
def launched(lxd_client: pylxd.Client) -> Iterator[list[Any]]:
    instances: list[Any] = []
    yield instances
    for instance in instances:
        with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
            instance.stop(force=True, wait=True)
        with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
            instance.delete(wait=True)


# ----- tests --------------------------------------------------------------------------------


def test_build_installs_the_packages_through_the_loopback_apt_proxy(
    first_build: Any,
    config: ManagerConfig,
    adapter: PylxdClient,
    lxd_client: pylxd.Client,
    repo_proxy: RepositoryProxy,
    launched: list[Any],
) -> None:
    """The real build script installs the runner's packages through the loopback apt proxy.

    arrange: the first build of an image from the build script, with apt going to a stub repository
        behind a loopback proxy.
    act: start a container from the stable alias, as a runner would, and inspect it.
    assert: the image is under the stable and versioned aliases with no builder left; apt fetched
        every stub package through the proxy; the packages, masked apt timers, users, groups,
        docker drop-in, proxy settings and image version are in the container, and the build script
        is gone.
    """
    # The first build's image, published under the stable and a versioned alias.
    alias = stable_alias(config, InstanceType.CONTAINER)
    (built,) = first_build.images
    assert built.alias == alias
    assert adapter.image_fingerprint(alias) == built.fingerprint
    assert adapter.image_fingerprint(built.version) == built.fingerprint
    assert builders(lxd_client) == []

    # A container from the stable alias, as a runner would start.
    instance = lxd_client.instances.create(
        {
            "name": f"{PREFIX}-check",
            "source": {"type": "image", "alias": alias},
            "profiles": ["default"],
        },
        wait=True,
    )
    launched.append(instance)
    instance.start(wait=True)
    wait_for_boot(instance)

    def out(*command: str) -> tuple[int, str]:
        result = run_in(instance, list(command))
        return result.exit_code, result.stdout.strip()

    # Apt went through the proxy (absolute URIs) and fetched every stub package.
    proxied = [r for r in repo_proxy.requests if r.startswith("http://deb.debian.org/debian/")]
    assert f"http://deb.debian.org/debian/dists/{SUITE}/Release" in proxied
    fetched = {r.rsplit("/", 1)[-1].split("_", 1)[0] for r in proxied if r.endswith(".deb")}
    assert fetched >= set(DEFAULT_PACKAGES) - {"ca-certificates", "curl"}  # already installed
    for package in DEFAULT_PACKAGES:
        assert out("dpkg-query", "-W", "-f=${Status}", package) == (0, "install ok installed")
    assert out("dpkg-query", "-W", "unattended-upgrades")[0] != 0
    # The runner's own dependencies, installed explicitly (the JIT start skips config.sh).
    for package in ("libicu72", "liblttng-ust1"):
        assert out("dpkg-query", "-W", "-f=${Status}", package) == (0, "install ok installed")
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        assert out("systemctl", "is-enabled", timer)[1] == "masked"
    assert out("/usr/bin/yq")[1] == "yq (github-runner test stub) version v4"
    assert out("getent", "group", "docker")[0] == 0
    # The original charm's runner environment: the ubuntu user in docker and microk8s, python,
    # yarn (installed through npm), and docker's DOCKER-USER chain accepting traffic.
    assert out("getent", "passwd", "ubuntu")[1].split(":")[5] == "/home/ubuntu"
    assert {"docker", "microk8s"} <= set(out("id", "-nG", "ubuntu")[1].split())
    assert out("readlink", "/usr/bin/python")[1] == "python3"
    assert out("python", "-c", "import sys; print(sys.version_info[0])")[1] == "3"
    assert out("cat", "/var/log/grt-npm-calls")[1].splitlines()[0] == "install --global yarn"
    assert out("yarn")[1] == "1.22.22-grt-stub"
    drop_in = adapter.pull_file(
        instance.name, "/etc/systemd/system/docker.service.d/github-runner-docker-user.conf"
    ).decode()
    assert "ExecStartPost=/bin/sh -c 'iptables -C DOCKER-USER -j ACCEPT" in drop_in
    apt_conf = adapter.pull_file(instance.name, "/etc/apt/apt.conf.d/90github-runner-proxy")
    assert f'Acquire::http::Proxy "{repo_proxy.url}";' in apt_conf.decode()
    environment = adapter.pull_file(instance.name, "/etc/environment").decode()
    assert f'http_proxy="{repo_proxy.url}"' in environment.splitlines()
    info = adapter.pull_file(instance.name, "/etc/github-runner-image").decode()
    assert f'IMAGE="{built.version}"' in info.splitlines()
    assert out("test", "-e", "/root/github-runner-build-image.sh")[0] != 0
    assert out("cat", "/etc/machine-id")[1] != ""  # a fresh id, made at this boot


def test_rebuild_moves_the_alias_atomically_and_prunes_old_versions(
    first_build: Any,
    config: ManagerConfig,
    adapter: PylxdClient,
    lxd_client: pylxd.Client,
    tmp_path: Path,
) -> None:
    """Two more builds move the alias atomically and keep only the newest two versions.

    arrange: the first build's image, and a thread reading the stable alias during the second
        build.
    act: build a second time in process, then a third time through the command line as the image
        service's ExecStart runs it.
    assert: the alias always pointed at an image (the first or the second) and now at the newest;
        after the second build both versions remain; the third prunes the first and leaves no
        builder.
    """
    alias = stable_alias(config, InstanceType.CONTAINER)
    (v1,) = first_build.images
    seen: set[str | None] = set()
    stop = threading.Event()

    def watch() -> None:
        # A runner created during a build must always find an image behind the alias.
        while not stop.is_set():
            seen.add(adapter.image_fingerprint(alias))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        second = ImageBuilder(config, adapter).build()
    finally:
        stop.set()
        watcher.join()
    assert second.ok, second.errors
    (v2,) = second.images
    assert None not in seen
    assert seen <= {v1.fingerprint, v2.fingerprint}
    assert adapter.image_fingerprint(alias) == v2.fingerprint
    assert versions(adapter, alias) == {v1.version: v1.fingerprint, v2.version: v2.fingerprint}
    assert second.pruned == []

    # The third build, exactly as the image service's ExecStart runs it.
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config.model_dump(mode="json", exclude_none=True)))
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "github_runner_manager",
            "--config",
            str(config_file),
            "build-image",
        ],
        env={**os.environ, "PYTHONPATH": str(SRC_DIR)},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )

    # The newest two versions remain; the first one is gone.
    assert completed.returncode == 0, completed.stderr[-3000:]
    third = json.loads(completed.stdout)
    (v3,) = third["images"]
    assert third["pruned"] == [v1.version]
    assert adapter.image_fingerprint(alias) == v3["fingerprint"]
    assert versions(adapter, alias) == {
        v2.version: v2.fingerprint,
        v3["version"]: v3["fingerprint"],
    }
    assert builders(lxd_client) == []


def test_a_failing_step_fails_the_build_and_keeps_the_image(
    first_build: Any,
    source_image: str,
    repo_proxy: RepositoryProxy,
    adapter: PylxdClient,
    lxd_client: pylxd.Client,
    tmp_path: Path,
) -> None:
    """A failing build step fails the build and keeps the published image.

    arrange: a first build, then a config whose yq checksum cannot match.
    act: build.
    assert: the build fails with an image-build error naming the "installing yq" step; the alias
        and versions are unchanged, no builder is left, and the log holds sha256sum's FAILED.
    """
    config = ManagerConfig.model_validate(
        config_data(tmp_path, source_image, repo_proxy, yq_sha256={host_arch(): "0" * 64})
    )
    alias = stable_alias(config, InstanceType.CONTAINER)
    before = adapter.image_fingerprint(alias)
    before_versions = versions(adapter, alias)

    record = ImageBuilder(config, adapter).build()

    assert not record.ok
    (error,) = record.errors
    assert error.kind == "image-build"
    assert 'step "installing yq" failed' in error.message
    assert adapter.image_fingerprint(alias) == before
    assert versions(adapter, alias) == before_versions
    assert builders(lxd_client) == []
    log = (tmp_path / "state" / "image-build-container.log").read_text()
    assert "FAILED" in log  # sha256sum's verdict


def test_a_command_outlasting_one_wait_slice_is_waited_for(
    adapter: PylxdClient, lxd_client: pylxd.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command longer than one LXD wait slice is waited for in slices.

    arrange: a running container and a wait slice of 1 second.
    act: execute a command that sleeps 4 seconds and prints.
    assert: it returns exit code 0 and the output after at least 4 seconds.
    """
    monkeypatch.setattr(lxd_module, "WAIT_SLICE", 1.0)
    name = f"{PREFIX}-slices"
    lxd_client.instances.create(
        {"name": name, "source": {"type": "image", "alias": IMAGE}, "profiles": ["default"]},
        wait=True,
    )
    try:
        adapter.start_instance(name)
        started = time.monotonic()

        result = adapter.execute(name, ["sh", "-c", "sleep 4; echo finished"], timeout=30)

        assert result.exit_code == 0
        assert result.stdout == "finished\n"
        assert time.monotonic() - started >= 4
    finally:
        adapter.delete_instance(name)


def test_a_remote_source_is_pulled_by_lxd(adapter: PylxdClient, lxd_client: pylxd.Client) -> None:
    """A series name is pulled from the image server by LXD, and a failed pull leaves nothing.

    arrange: an instance spec for the series "noble" from an image server on loopback that is down.
    act: create the instance.
    assert: an LxdError naming the instance is raised and no instance is left.
    """
    name = f"{PREFIX}-remote"
    spec = InstanceSpec(
        name=name,
        instance_type=InstanceType.CONTAINER,
        image="noble",
        image_server="https://127.0.0.1:9",
        profiles=("default",),
        config={},
        devices={},
        ephemeral=False,
    )

    with pytest.raises(LxdError, match=f"cannot create instance {name}"):
        adapter.create_instance(spec)

    assert name not in [instance.name for instance in lxd_client.instances.all()]


def test_image_units_pass_systemd_analyze_verify(tmp_path: Path, config: ManagerConfig) -> None:
    """The image build's service and timer units pass systemd-analyze verify.

    arrange: the image units rendered for a config, in a temporary systemd directory.
    act: run systemd-analyze verify on both units.
    assert: it exits 0 with no warning about them; the timer runs every 6 hours and is persistent;
        the service runs build-image with this Python and a start timeout above the build timeout.
    """
    paths = service.ManagerPaths.for_unit(
        "grt-imgtest",
        0,
        config_root=tmp_path / "etc",
        state_root=tmp_path / "state",
        systemd_dir=tmp_path / "systemd",
    )
    paths.systemd_dir.mkdir(parents=True)
    manager = service.ManagerService(
        paths, CHARM_DIR, python=sys.executable, systemd_client=NoSystemd()
    )

    assert manager.ensure_image_units(config)
    completed = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(paths.image_service.file), str(paths.image_timer.file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr
    assert [
        line for line in completed.stderr.splitlines() if paths.image_service.stem in line
    ] == []
    timer = unit_directives(paths.image_timer.file)
    assert timer["OnCalendar"] == ["00/6:00"]
    assert timer["Persistent"] == ["true"]
    service_directives = unit_directives(paths.image_service.file)
    assert service_directives["ExecStart"][0].endswith(" build-image")
    assert service_directives["ExecStart"][0].startswith(sys.executable)
    assert int(service_directives["TimeoutStartSec"][0]) > config.image.timeout
