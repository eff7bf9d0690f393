# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The error table: one row per kind, read by the exit codes, the exporter and the charm."""

from __future__ import annotations

import pytest

from github_runner_manager import errors, exchange, exporter, metrics
from github_runner_manager.errors import KINDS, ErrorClass, ErrorKind, RunnerManagerError

# What each class means to the command line's callers (the charm, systemd, an operator).
CLASS_EXIT_CODES = {
    ErrorClass.OPERATOR_FIXABLE: {errors.EXIT_CONFIG, errors.EXIT_GITHUB_AUTH},
    ErrorClass.TRANSIENT: {errors.EXIT_TRANSIENT},
    ErrorClass.BUSY: {errors.EXIT_BUSY},
    ErrorClass.UNEXPECTED: {errors.EXIT_UNEXPECTED},
}


def _error_classes(base: type[RunnerManagerError]) -> list[type[RunnerManagerError]]:
    found = [base]
    for subclass in base.__subclasses__():
        found.extend(_error_classes(subclass))
    return found


def test_every_kind_has_one_row():
    """A kind cannot be added without saying what it means.

    arrange: the ErrorKind enum and the table.
    act: compare the kinds with the table's rows.
    assert: the same kinds, each with an exit code its class allows.
    """
    assert set(KINDS) == set(ErrorKind)
    for kind, info in KINDS.items():
        assert info.exit_code in CLASS_EXIT_CODES[info.error_class], kind


def test_every_error_class_carries_a_kind_of_the_table():
    """Every error the manager raises maps to a row, so it has an exit code and a status.

    arrange: every RunnerManagerError subclass (errors.py, exchange.py and metrics.py loaded).
    act: read each class's kind.
    assert: each is an ErrorKind member.
    """
    assert exchange.CorruptDataError in _error_classes(RunnerManagerError)
    assert metrics.MetricsError in _error_classes(RunnerManagerError)

    kinds = {cls.__name__: cls.kind for cls in _error_classes(RunnerManagerError)}

    assert {name: kind for name, kind in kinds.items() if not isinstance(kind, ErrorKind)} == {}


def test_a_kind_reads_as_its_name():
    """Logs and f-strings show `token`, not `ErrorKind.TOKEN`.

    arrange: a kind.
    act: format it.
    assert: its value, and it equals its string.
    """
    assert f"{ErrorKind.RATE_LIMIT}" == "rate-limit"
    assert ErrorKind.RATE_LIMIT == "rate-limit"


def test_the_exporter_has_a_series_for_every_kind():
    """A new kind shows on the dashboards without an exporter change.

    arrange: the exporter's kinds.
    act: compare them with the table.
    assert: every kind of the table is exported.
    """
    assert set(exporter.ERROR_KINDS) == set(KINDS)


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        pytest.param([], errors.EXIT_OK, id="no error: success"),
        pytest.param(
            [ErrorKind.TOKEN, ErrorKind.CONFIG], errors.EXIT_CONFIG, id="config before token"
        ),
        pytest.param(
            [ErrorKind.BUSY, ErrorKind.UNEXPECTED],
            errors.EXIT_UNEXPECTED,
            id="busy only when nothing else",
        ),
        pytest.param(
            [ErrorKind.UNEXPECTED, ErrorKind.TOKEN],
            errors.EXIT_GITHUB_AUTH,
            id="the operator's problem first",
        ),
        pytest.param(
            [ErrorKind.METRICS, ErrorKind.CORRUPT_RUNNER_DATA],
            errors.EXIT_TRANSIENT,
            id="kinds without a note are transient",
        ),
        pytest.param(["lxd"], errors.EXIT_TRANSIENT, id="a kind given by its name"),
    ],
)
def test_exit_code_of(kinds, expected):
    """The exit code of a run comes from the table, by class precedence.

    arrange: the kinds of a run's errors.
    act: exit_code_of.
    assert: the exit code.
    """
    assert errors.exit_code_of(kinds) == expected
