# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runner manager: keeps ephemeral GitHub Actions runners alive in LXD, for one charm unit.

This package never imports ops: it runs from the charm's systemd units and actions as
`python3 -m github_runner_manager`, and works without Juju. pylxd is imported only in `lxd.py`,
ghapi only in `github.py`.

The names below are the package's face: all the charm may use (a test holds the charm's
modules to importing from here only). They are the configuration the charm writes, the report
and check result it reads back, the error table it maps to statuses and messages, and what it
may ask about the runner image.
"""

from .binary import runner_architecture
from .config import (
    MAX_DISK,
    MAX_MEMORY,
    GitHubSettings,
    ImageSettings,
    LxdSettings,
    ManagerConfig,
    MetricsSettings,
    ProxySettings,
    RunnerSettings,
    SshDebugSettings,
    describe_validation_error,
    normalise_size,
    parse_size,
    validate_github_url,
)
from .errors import (
    EXIT_BUSY,
    EXIT_CONFIG,
    EXIT_GITHUB_AUTH,
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_UNEXPECTED,
    KINDS,
    ConfigError,
    ErrorClass,
    ErrorKind,
    ImageBuildError,
    KindInfo,
    RunnerBinaryError,
    RunnerManagerError,
    exit_code_of,
)
from .image_policy import ImageStatus, image_building, image_status, image_types
from .models import GitHubPath, InstanceType, RunnerState, parse_github_path
from .planner import Reason
from .report import CheckResult, ErrorEntry, RemovedEntry, Report, RunnerEntry, read_report
from .utils import atomic_write

__all__ = [
    "EXIT_BUSY",
    "EXIT_CONFIG",
    "EXIT_GITHUB_AUTH",
    "EXIT_OK",
    "EXIT_TRANSIENT",
    "EXIT_UNEXPECTED",
    "KINDS",
    "MAX_DISK",
    "MAX_MEMORY",
    "CheckResult",
    "ConfigError",
    "ErrorClass",
    "ErrorEntry",
    "ErrorKind",
    "GitHubPath",
    "GitHubSettings",
    "ImageBuildError",
    "ImageSettings",
    "ImageStatus",
    "InstanceType",
    "KindInfo",
    "LxdSettings",
    "ManagerConfig",
    "MetricsSettings",
    "ProxySettings",
    "Reason",
    "RemovedEntry",
    "Report",
    "RunnerBinaryError",
    "RunnerEntry",
    "RunnerManagerError",
    "RunnerSettings",
    "RunnerState",
    "SshDebugSettings",
    "atomic_write",
    "describe_validation_error",
    "exit_code_of",
    "image_building",
    "image_status",
    "image_types",
    "normalise_size",
    "parse_github_path",
    "parse_size",
    "read_report",
    "runner_architecture",
    "validate_github_url",
]
