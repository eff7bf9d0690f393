#!/usr/bin/env bash
# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
#
# Prepare the LXD test bed for the functional tests, the benchmark and the quick start.
#
# Idempotent and quick when already done. It:
#   1. installs Debian's lxd, lxd-client, debootstrap, btrfs-progs and nftables when missing;
#   2. starts the LXD daemon when it is not running (these machines have no systemd as PID 1);
#   3. initialises LXD (btrfs storage pool, address-less bridge) only when it has never been
#      initialised, so an LXD that is already set up is left as it is;
#   4. creates, when missing, the address-less bridge `grtbr0` and the LXD project
#      `github-runner-tests` whose default profile puts instances on that bridge, so tests never
#      attach an instance to a bridge with a private or public IPv4 address (see the loopback
#      network rule in TESTING.md);
#   5. builds the runner base image with debootstrap and imports it under the alias
#      `github-runner-test`, caching the tarballs so the next build only re-imports them;
#   6. builds the same way `github-runner-test-python`: that image plus the distribution's Python
#      packages (pyOpenSSL, cryptography, PyYAML, ...), for running the packed charm.
#
# Environment:
#   GRT_CACHE_DIR  cache for the image tarballs (default /var/cache/github-runner-testbed)
#   GRT_IMAGE      image alias (default github-runner-test)
#   GRT_PYTHON_IMAGE  alias of the image with the distribution's Python packages
#                  (default github-runner-test-python)
#   GRT_PROJECT    LXD project for the tests (default github-runner-tests)
#   GRT_BRIDGE     address-less bridge for test instances (default grtbr0)
#   GRT_MIRROR     Debian mirror for debootstrap (default http://deb.debian.org/debian)
set -euo pipefail

CACHE_DIR=${GRT_CACHE_DIR:-/var/cache/github-runner-testbed}
IMAGE_ALIAS=${GRT_IMAGE:-github-runner-test}
PROJECT=${GRT_PROJECT:-github-runner-tests}
BRIDGE=${GRT_BRIDGE:-grtbr0}
MIRROR=${GRT_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# The image recipe: changing it changes the cache key, so a stale image is rebuilt.
IMAGE_PACKAGES="systemd-sysv,dbus,ca-certificates,curl,python3,sudo,iproute2,passwd"
IMAGE_VERSION="1"
# The image the packed charm runs in (tests/functional/test_packed_charm.py): the test image plus
# the distribution's Python packages an Ubuntu cloud image carries (cloud-init pulls them in),
# which the charm's `dispatch` and the manager's service see beside the charm's own venv.
PYTHON_IMAGE_ALIAS=${GRT_PYTHON_IMAGE:-github-runner-test-python}
PYTHON_IMAGE_PACKAGES="$IMAGE_PACKAGES,python3-openssl,python3-cryptography,python3-cffi-backend,python3-yaml,python3-requests,python3-jinja2,python3-pkg-resources,python3-urllib3"

log() { printf 'testbed: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (it installs packages and manages LXD)"
    exit 1
fi

install_packages() {
    local missing=()
    for pkg in lxd lxd-client debootstrap btrfs-progs nftables; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -q
        # With the recommended packages (dnsmasq-base, apparmor, lxd-agent), as tested here.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
}

start_daemon() {
    if lxc query /1.0 >/dev/null 2>&1; then
        return
    fi
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        log "starting lxd through systemd"
        systemctl start lxd.socket lxd.service || true
    fi
    if ! lxc query /1.0 >/dev/null 2>&1; then
        log "starting the lxd daemon"
        # setsid: the daemon outlives this script and the shell that started it.
        setsid lxd --group lxd --logfile=/var/log/lxd.log >/dev/null 2>&1 < /dev/null &
    fi
    lxd waitready --timeout 60
}

initialise() {
    local pools networks
    pools=$(lxc query /1.0/storage-pools | tr -d '[:space:]')
    networks=$(lxc network list --format csv | awk -F, '$3 == "YES"' | wc -l)
    if [ "$pools" != "[]" ] || [ "$networks" -gt 0 ]; then
        log "lxd is already initialised; leaving its pools, networks and profiles alone"
        return
    fi
    local driver=dir
    if command -v mkfs.btrfs >/dev/null 2>&1 && grep -qw btrfs /proc/filesystems; then
        driver=btrfs
    fi
    log "initialising lxd (storage driver $driver, bridge without addresses)"
    local size_line=""
    [ "$driver" = btrfs ] && size_line="    size: 30GiB"
    lxd init --preseed <<EOF
storage_pools:
- name: default
  driver: $driver
  config:
$( [ -n "$size_line" ] && echo "$size_line" || echo "    {}" )
networks:
- name: lxdbr0
  type: bridge
  config:
    ipv4.address: none
    ipv6.address: none
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
    eth0:
      name: eth0
      network: lxdbr0
      type: nic
EOF
}

first_pool() {
    if lxc storage show default >/dev/null 2>&1; then
        echo default
    else
        lxc storage list --format csv | head -n 1 | cut -d, -f1
    fi
}

ensure_project() {
    if ! lxc network show "$BRIDGE" >/dev/null 2>&1; then
        log "creating bridge $BRIDGE without addresses"
        lxc network create "$BRIDGE" ipv4.address=none ipv6.address=none
    fi
    if ! lxc project show "$PROJECT" >/dev/null 2>&1; then
        log "creating project $PROJECT"
        lxc project create "$PROJECT" -c features.images=false -c features.profiles=true \
            -c features.storage.volumes=false
    fi
    local pool
    pool=$(first_pool)
    if [ -z "$pool" ]; then
        log "no storage pool found"
        exit 1
    fi
    # The project's own default profile: root disk and a nic on the address-less bridge.
    lxc profile edit default --project "$PROJECT" <<EOF
description: github-runner test instances (no IPv4/IPv6 addresses; loopback through proxy devices)
config: {}
devices:
  root:
    path: /
    pool: $pool
    type: disk
  eth0:
    name: eth0
    network: $BRIDGE
    type: nic
EOF
}

# build_image ALIAS PACKAGES CACHE_PREFIX
build_image() {
    local alias=$1 packages=$2 prefix=$3
    local key="${SUITE}-${IMAGE_VERSION}-$(echo "$packages" | sha256sum | cut -c1-12)-$(dpkg --print-architecture)"
    local current
    current=$(lxc image get-property "$alias" description 2>/dev/null || true)
    if [ "$current" = "github-runner test image $key" ]; then
        return
    fi
    mkdir -p "$CACHE_DIR"
    local rootfs_tar="$CACHE_DIR/${prefix}rootfs-$key.tar.gz" meta_tar="$CACHE_DIR/${prefix}meta-$key.tar.gz"
    if [ ! -s "$rootfs_tar" ] || [ ! -s "$meta_tar" ]; then
        local work
        work=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
        trap 'rm -rf "$work"' RETURN
        log "building the test image $alias with debootstrap (about a minute)"
        debootstrap --variant=minbase --include="$packages" "$SUITE" "$work/rootfs" \
            "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
            tail -n 20 "$work/debootstrap.log" >&2
            exit 1
        }
        # Keep the image small and its boot quiet: no apt lists, no machine id.
        rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin
        : >"$work/rootfs/etc/machine-id"
        echo "github-runner-test" >"$work/rootfs/etc/hostname"
        local arch
        arch=$(uname -m)
        cat >"$work/metadata.yaml" <<EOF
architecture: $arch
creation_date: $(date +%s)
properties:
  os: debian
  release: $SUITE
  description: github-runner test image $key
EOF
        tar -C "$work/rootfs" --numeric-owner -czf "$work/rootfs.tar.gz" .
        tar -C "$work" -czf "$work/meta.tar.gz" metadata.yaml
        rm -f "$CACHE_DIR/${prefix}"rootfs-*.tar.gz "$CACHE_DIR/${prefix}"meta-*.tar.gz
        mv "$work/rootfs.tar.gz" "$rootfs_tar"
        mv "$work/meta.tar.gz" "$meta_tar"
    fi
    log "importing the test image as $alias"
    if lxc image show "$alias" >/dev/null 2>&1; then
        lxc image delete "$alias"
    fi
    lxc image import "$meta_tar" "$rootfs_tar" --alias "$alias" >/dev/null
    lxc image set-property "$alias" description "github-runner test image $key"
}

install_packages
start_daemon
initialise
ensure_project
build_image "$IMAGE_ALIAS" "$IMAGE_PACKAGES" ""
build_image "$PYTHON_IMAGE_ALIAS" "$PYTHON_IMAGE_PACKAGES" "python-"
log "ready: images $IMAGE_ALIAS and $PYTHON_IMAGE_ALIAS, project $PROJECT, bridge $BRIDGE"
