# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The manager's configuration file: loading, validation, error messages, helpers."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from github_runner_manager.config import (
    MAX_CONFIG_BYTES,
    MAX_PREFIX_LENGTH,
    ManagerConfig,
    api_base_url,
    config_hash,
    load_config,
    parse_size,
    validate_github_url,
)
from github_runner_manager.errors import ConfigError
from github_runner_manager.models import GitHubOrg, GitHubRepo, InstanceType

TOKEN = "ghp_do_not_print_this_0123456789"


def settings(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A valid configuration as plain data, with nested overrides merged in."""
    data: dict[str, Any] = {
        "unit": "github-runner/0",
        "name_prefix": "github-runner-0",
        "flavor": "github-runner",
        "github": {"path": "test-owner/test-repo", "token": TOKEN},
        "runners": {"containers": 2},
        "state_dir": str(tmp_path / "state"),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(tmp_path: Path, **overrides: Any) -> str:
    """Load a configuration with overrides that must be refused; return the message."""
    path = write(tmp_path, json.dumps(settings(tmp_path, **overrides)), "config.json")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_load_json(tmp_path):
    """A JSON configuration file loads with its values and defaults.

    arrange: a JSON file for a repository.
    act: load_config.
    assert: the values given, and the defaults for the VM count, the report file and the API URL.
    """
    path = write(tmp_path, json.dumps(settings(tmp_path)), "config.json")

    config = load_config(path)

    assert config.unit == "github-runner/0"
    assert config.github.github_path == GitHubRepo("test-owner", "test-repo")
    assert config.github.read_token() == TOKEN
    assert config.runners.count(InstanceType.CONTAINER) == 2
    assert config.runners.count(InstanceType.VIRTUAL_MACHINE) == 0
    assert config.report_file == tmp_path / "state" / "report.json"
    assert config.github.api_url == "https://api.github.com"


def test_load_yaml(tmp_path):
    """A YAML configuration file for an organisation on GHES loads with its values.

    arrange: a YAML file for an organisation on a GitHub Enterprise Server.
    act: load_config.
    assert: the organisation and group, the normalised URL and its API URL, labels, VM count and
        report path are parsed.
    """
    path = write(
        tmp_path,
        f"""
unit: github-runner/1
name_prefix: github-runner-1
flavor: github-runner
github:
  url: https://ghes.example.com/
  path: my-org
  group: ci
  token: {TOKEN}
runners:
  virtual_machines: 1
  labels: [large, gpu]
  memory: 16GiB
state_dir: {tmp_path / "state"}
report_path: {tmp_path / "report.json"}
""",
    )

    config = load_config(path)

    assert config.github.github_path == GitHubOrg("my-org", "ci")
    assert config.github.url == "https://ghes.example.com"
    assert config.github.api_url == "https://ghes.example.com/api/v3"
    assert config.runners.labels == ("large", "gpu")
    assert config.runners.count(InstanceType.VIRTUAL_MACHINE) == 1
    assert config.report_file == tmp_path / "report.json"


def test_missing_file_is_a_config_error(tmp_path):
    """A missing configuration file is a ConfigError naming it.

    arrange: no file.
    act: load_config.
    assert: ConfigError of kind config naming the file.
    """
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError, match="cannot read the configuration file") as caught:
        load_config(path)

    assert str(path) in str(caught.value)
    assert caught.value.kind == "config"


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n", ""])
def test_file_that_is_not_a_mapping_is_refused(tmp_path, text):
    """A configuration file that does not hold a mapping is refused.

    arrange: a YAML list, scalar or empty file.
    act: load_config.
    assert: ConfigError saying it must hold a mapping.
    """
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, text))


def test_file_that_is_not_yaml_is_refused(tmp_path):
    """A configuration file neither JSON nor YAML can read is refused.

    arrange: text that no YAML parser reads.
    act: load_config.
    assert: ConfigError saying it is neither JSON nor YAML.
    """
    with pytest.raises(ConfigError, match="neither JSON nor YAML"):
        load_config(write(tmp_path, "unit: [unclosed\n"))


def test_yaml_syntax_error_message_does_not_hold_the_token(tmp_path):
    """A YAML syntax error on the token's line does not quote the token.

    arrange: a YAML syntax error on the token's line.
    act: load_config.
    assert: ConfigError whose message does not hold the token.
    """
    # Guards load_config's message for a yaml.YAMLError: str() of the error quotes the offending
    # source line (PyYAML's snippet), so a syntax error on the token's line would put the token
    # in the ConfigError message, which the CLI prints on stdout (the action output) and logs.
    # The YAML path must drop the source line, as describe_validation_error drops input values.
    text = json.dumps(settings(tmp_path)).replace(f'"{TOKEN}"', f"{TOKEN}: oops")
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert TOKEN not in str(caught.value)


def test_file_that_is_not_utf8_is_a_config_error(tmp_path):
    """A configuration file that is not UTF-8 is a ConfigError.

    arrange: a configuration file with bytes that are not UTF-8.
    act: load_config.
    assert: ConfigError (not a raw UnicodeDecodeError).
    """
    # Guards load_config's translation of UnicodeDecodeError (a ValueError, not an OSError):
    # left raw, it would escape load_config and the CLI would crash with a traceback and exit
    # code 1 instead of printing a config error and exiting 2.
    path = tmp_path / "config.yaml"
    path.write_bytes(b"unit: github-runner/0\nflavor: \xff\xfe\n")

    with pytest.raises(ConfigError):
        load_config(path)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"runners": {"cpu": 0}}, "runners.cpu"),
        ({"runners": {"containers": -1}}, "runners.containers"),
        ({"runners": {"memory": "7GB"}}, "runners.memory"),
        ({"runners": {"labels": ["has space"]}}, "runners.labels"),
        ({"github": {"url": "http://github.example.com"}}, "github.url"),
        ({"github": {"path": "a/b/c"}}, "github"),
        ({"timing": {"spawn_concurrency": 0}}, "timing.spawn_concurrency"),
        ({"metrics": {"exporter_port": 70000}}, "metrics.exporter_port"),
        ({"ssh_debug": [{"host": "tmate", "port": 0, "rsa_fingerprint": "a"}]}, "ssh_debug.0"),
        ({"dockerhub_mirror": "http://mirror.example.com"}, "dockerhub_mirror"),
        ({"name_prefix": "Bad_Prefix"}, "name_prefix"),
        ({"unknown_option": True}, "unknown_option"),
        ({"unit": ""}, "unit"),
    ],
)
def test_invalid_value_names_the_field_and_hides_the_token(tmp_path, overrides, field):
    """An invalid value is named by its dotted field, without the token.

    arrange: one invalid value.
    act: load_config.
    assert: the message names the dotted field and never holds the token.
    """
    message = config_error(tmp_path, **overrides)

    assert message.startswith(f"{field}") or f"; {field}" in message, message
    assert TOKEN not in message


def test_invalid_token_type_does_not_echo_the_value(tmp_path):
    """A token of the wrong type is named without echoing its value.

    arrange: the token given as a mapping holding the secret.
    act: load_config.
    assert: github.token named, the secret not shown.
    """
    message = config_error(tmp_path, github={"token": {"value": TOKEN}})

    assert "github.token" in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"github": {"url": "https://github.com:0"}}, "github.url"),
        ({"github": {"group": ""}}, "github.group"),
        ({"runners": {"containers": 1001}}, "runners.containers"),
        ({"runners": {"cpu": 0}}, "runners.cpu"),
        ({"runners": {"base_image": "two words"}}, "runners.base_image"),
        ({"runners": {"labels": ["has space"]}}, "runners.labels"),
        ({"proxy": {"http": "http://user:hunter2@proxy:x", "aproxy": True}}, "proxy.http"),
        ({"proxy": {"https": "ftp://proxy.example.com:21"}}, "proxy.https"),
        ({"proxy": {"https": "http://[::1:3128"}}, "proxy.https"),
        ({"proxy": {"no_proxy": "a, b"}}, "proxy.no_proxy"),
        ({"proxy": {"http": "http://proxy.example.com", "aproxy": True}}, "proxy.aproxy"),
        ({"dockerhub_mirror": "https://mirror.example.com:99999"}, "dockerhub_mirror"),
        ({"metrics": {"check_interval": 0}}, "metrics.check_interval"),
    ],
)
def test_value_rules_name_the_key_and_the_fix(tmp_path, overrides, field):
    """Each value rule the charm relies on names its key and says what to use instead.

    arrange: one value a settings model refuses.
    act: load_config.
    assert: exactly one problem, naming the key, with a fix; no proxy password in it.
    """
    message = config_error(tmp_path, **overrides)

    assert message.startswith(f"{field}: "), message
    assert "; " not in message, message
    assert re.search(r"\b(use|set|turn)\b", message), message
    assert "hunter2" not in message


def test_missing_required_fields_are_all_named(tmp_path):
    """Every missing required field is named in one error.

    arrange: no unit, flavor or state_dir.
    act: load_config.
    assert: each is named, one per part of the message.
    """
    data = settings(tmp_path)
    for key in ("unit", "flavor", "state_dir"):
        del data[key]
    path = write(tmp_path, json.dumps(data), "config.json")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    lines = str(caught.value).split("; ")
    assert sorted(line.split(":")[0] for line in lines) == ["flavor", "state_dir", "unit"]


@pytest.mark.parametrize(
    "github",
    [
        {"path": "o/r", "token": TOKEN, "token_file": "/etc/token"},
        {"path": "o/r"},
    ],
    ids=["both", "neither"],
)
def test_exactly_one_of_token_and_token_file(tmp_path, github):
    """Exactly one of token and token_file must be set.

    arrange: both or neither of token and token_file.
    act: load_config.
    assert: refused, saying to set exactly one.
    """
    data = settings(tmp_path)
    data["github"] = github
    path = write(tmp_path, json.dumps(data), "config.json")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value) == "github: set exactly one of github.token and github.token_file"


def test_read_token_from_file(tmp_path):
    """A token read from token_file is stripped of its newline.

    arrange: token_file holding the token and a newline.
    act: read_token.
    assert: the token, stripped.
    """
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    config = ManagerConfig.model_validate(
        settings(tmp_path, github={"token": None, "token_file": str(token_file)})
    )

    assert config.github.read_token() == TOKEN


def test_read_token_from_missing_file_is_a_config_error(tmp_path):
    """A missing token_file is a ConfigError when the token is read.

    arrange: token_file does not exist.
    act: read_token.
    assert: ConfigError saying the token file cannot be read.
    """
    token_file = tmp_path / "absent-token"
    config = ManagerConfig.model_validate(
        settings(tmp_path, github={"token": None, "token_file": str(token_file)})
    )

    with pytest.raises(ConfigError, match="cannot read the token file"):
        config.github.read_token()


@pytest.mark.parametrize("content", ["", "  \n\n"])
def test_read_token_from_empty_file_is_a_config_error(tmp_path, content):
    """An empty or blank token_file is a ConfigError.

    arrange: token_file is empty or blank.
    act: read_token.
    assert: ConfigError saying the token is empty.
    """
    token_file = tmp_path / "token"
    token_file.write_text(content)
    config = ManagerConfig.model_validate(
        settings(tmp_path, github={"token": None, "token_file": str(token_file)})
    )

    with pytest.raises(ConfigError, match="token is empty"):
        config.github.read_token()


def test_blank_inline_token_is_a_config_error(tmp_path):
    """A blank inline token is a ConfigError.

    arrange: an inline token of spaces.
    act: read_token.
    assert: ConfigError saying the token is empty.
    """
    config = ManagerConfig.model_validate(settings(tmp_path, github={"token": "   "}))

    with pytest.raises(ConfigError, match="token is empty"):
        config.github.read_token()


def test_token_is_hidden_in_the_model_representation(tmp_path):
    """The token is hidden in the config's repr and JSON dump.

    arrange: an inline token.
    act: repr and dump the config.
    assert: the token is in neither.
    """
    config = ManagerConfig.model_validate(settings(tmp_path))

    assert TOKEN not in repr(config)
    assert TOKEN not in config.model_dump_json()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1KiB", 1024),
        ("7GiB", 7 * 1024**3),
        ("512MiB", 512 * 1024**2),
        (" 10 GiB ", 10 * 1024**3),
        ("2TiB", 2 * 1024**4),
        ("1PiB", 1024**5),
        ("1EiB", 1024**6),
    ],
)
def test_parse_size(value, expected):
    """A size string parses to bytes.

    arrange: a size string.
    act: parse_size.
    assert: the expected bytes.
    """
    assert parse_size(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0GiB", "greater than zero"),
        ("7GB", "is not a size"),
        ("7gib", "is not a size"),
        ("7", "is not a size"),
        ("-1GiB", "is not a size"),
        ("1.5GiB", "is not a size"),
        ("", "is not a size"),
    ],
)
def test_parse_size_refuses(value, message):
    """A malformed or zero size is refused.

    arrange: a malformed or zero size.
    act: parse_size.
    assert: ValueError saying why.
    """
    with pytest.raises(ValueError, match=message):
        parse_size(value)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("memory", "7 GiB", "7GiB"),
        ("memory", "  7GiB ", "7GiB"),
        ("disk", "10\tGiB", "10GiB"),
        ("disk", "0010GiB", "10GiB"),
    ],
)
def test_sizes_are_normalised_to_what_lxd_reads(tmp_path, field, value, expected):
    """Sizes are normalised to the form LXD reads.

    arrange: a size with spaces or leading zeros.
    act: load_config.
    assert: the runners get the size in the form LXD accepts (`7GiB`, never `7 GiB`).
    """
    path = write(tmp_path, json.dumps(settings(tmp_path, runners={field: value})), "c.json")

    config = load_config(path)

    assert getattr(config.runners, field) == expected


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"runners": {"containers": True}}, "runners.containers"),
        ({"runners": {"containers": 1e30}}, "runners.containers"),
        ({"runners": {"containers": "1e30"}}, "runners.containers"),
        ({"runners": {"containers": 2.0}}, "runners.containers"),
        ({"runners": {"containers": 100_000}}, "runners.containers"),
        ({"runners": {"virtual_machines": 100_000}}, "runners.virtual_machines"),
        ({"runners": {"cpu": 10**9}}, "runners.cpu"),
        ({"runners": {"memory": "999999TiB"}}, "runners.memory"),
        ({"runners": {"disk": "99999PiB"}}, "runners.disk"),
        ({"timing": {"api_timeout": float("inf")}}, "timing.api_timeout"),
        ({"timing": {"api_timeout": float("nan")}}, "timing.api_timeout"),
        ({"timing": {"api_timeout": True}}, "timing.api_timeout"),
        ({"timing": {"registration_timeout": 1e12}}, "timing.registration_timeout"),
        ({"timing": {"lock_timeout": float("inf")}}, "timing.lock_timeout"),
        ({"timing": {"download_timeout": 0}}, "timing.download_timeout"),
        ({"lxd": {"timeout": float("inf")}}, "lxd.timeout"),
        ({"image": {"timeout": float("inf")}}, "image.timeout"),
        ({"metrics": {"check_interval": float("inf")}}, "metrics.check_interval"),
        ({"timing": {"spawn_concurrency": True}}, "timing.spawn_concurrency"),
    ],
)
def test_counts_limits_and_timeouts_beyond_one_machine_are_refused(tmp_path, overrides, field):
    """Counts, limits and timeouts beyond what one machine holds are refused.

    arrange: a count, limit or timeout no machine can hold (or a boolean for a number).
    act: load_config.
    assert: refused, naming the field.
    """
    message = config_error(tmp_path, **overrides)

    assert message.startswith(field), message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com", "https://github.com"),
        ("https://github.com/", "https://github.com"),
        ("  https://ghes.example.com:8443/ ", "https://ghes.example.com:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.8.9.10", "http://127.8.9.10"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_validate_github_url_accepts(url, expected):
    """A GitHub URL over https, or http to loopback, is accepted and normalised.

    arrange: https, or http to loopback.
    act: validate_github_url.
    assert: the normalised URL.
    """
    assert validate_github_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://github.com", "must use https"),
        ("http://10.0.0.1:8080", "must use https"),
        ("http://localhost.example.com", "must use https"),
        ("https://github.com/owner/repo", "without a path"),
        ("https://github.com?x=1", "without a path"),
        ("https://github.com#frag", "without a path"),
        ("https://user@github.com", "without a path"),
        ("ftp://github.com", "is not an https URL"),
        ("github.com", "is not an https URL"),
        ("https://", "is not an https URL"),
    ],
)
def test_validate_github_url_refuses(url, message):
    """A GitHub URL over plain http to a remote host, with a path or another scheme is refused.

    arrange: plain http to a remote host, a path, another scheme.
    act: validate_github_url.
    assert: ValueError saying why.
    """
    with pytest.raises(ValueError, match=message):
        validate_github_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com", "https://api.github.com"),
        ("https://www.github.com", "https://api.github.com"),
        ("https://ghes.example.com", "https://ghes.example.com/api/v3"),
        ("https://ghes.example.com/", "https://ghes.example.com/api/v3"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/api/v3"),
    ],
)
def test_api_base_url(url, expected):
    """A GitHub web URL maps to its REST API base.

    arrange: a GitHub web URL.
    act: api_base_url.
    assert: the REST API base.
    """
    assert api_base_url(url) == expected


@pytest.mark.parametrize(
    "prefix",
    ["github-runner-0", "a", "a1", "x-y-z-9", "a" * MAX_PREFIX_LENGTH],
)
def test_name_prefix_accepted(tmp_path, prefix):
    """A valid name prefix is kept as given.

    arrange: a valid prefix.
    act: validate the config.
    assert: kept as given.
    """
    config = ManagerConfig.model_validate(settings(tmp_path, name_prefix=prefix))

    assert config.name_prefix == prefix


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "0runner",
        "-runner",
        "runner-",
        "Runner",
        "run_ner",
        "run.ner",
        "a" * (MAX_PREFIX_LENGTH + 1),
    ],
)
def test_name_prefix_refused(tmp_path, prefix):
    """An invalid name prefix is refused naming name_prefix.

    arrange: an invalid prefix (case, start, end, characters, length).
    act: load the config.
    assert: the error names name_prefix.
    """
    assert config_error(tmp_path, name_prefix=prefix).startswith("name_prefix:")


def test_name_prefix_leaves_room_for_the_runner_suffix():
    """The longest name prefix leaves room for the runner suffix in an LXD hostname.

    arrange: the longest prefix.
    act: build a runner name from it and a 12-digit suffix.
    assert: 63 characters, the longest valid LXD hostname.
    """
    assert len("a" * MAX_PREFIX_LENGTH + "-" + "0" * 12) == 63


def test_config_hash_is_stable_and_short():
    """The config hash ignores key order and is 16 hex characters.

    arrange: the same data in two key orders.
    act: hash both.
    assert: equal, 16 hex characters.
    """
    first = config_hash({"a": 1, "b": [1, 2], "c": {"x": "y", "z": None}}, "extra")
    second = config_hash({"c": {"z": None, "x": "y"}, "b": [1, 2], "a": 1}, "extra")

    assert first == second
    assert len(first) == 16
    assert int(first, 16) >= 0


@pytest.mark.parametrize(
    ("data", "extra"),
    [
        ({"a": 2, "b": [1, 2]}, "extra"),
        ({"a": 1, "b": [2, 1]}, "extra"),
        ({"a": 1, "b": [1, 2], "c": None}, "extra"),
        ({"a": 1, "b": [1, 2]}, "other"),
        ({"a": 1, "b": [1, 2]}, ""),
    ],
)
def test_config_hash_changes_with_any_input(data, extra):
    """The config hash changes with any change to its data or extra text.

    arrange: data or extra text differing from a reference.
    act: hash.
    assert: differs from the reference's hash.
    """
    assert config_hash(data, extra) != config_hash({"a": 1, "b": [1, 2]}, "extra")


def runner_hash(tmp_path: Path, **overrides: Any) -> str:
    config = ManagerConfig.model_validate(settings(tmp_path, **overrides))
    return config_hash(config.runner_hash_input(InstanceType.CONTAINER))


def test_runner_hash_ignores_token_and_counts(tmp_path):
    """The runner hash ignores the token and the counts.

    arrange: configs differing only in token and counts.
    act: hash.
    assert: equal.
    """
    assert runner_hash(tmp_path) == runner_hash(
        tmp_path,
        github={"token": "ghp_another_token"},
        runners={"containers": 9, "virtual_machines": 3},
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"runners": {"labels": ["large"]}},
        {"runners": {"memory": "8GiB"}},
        {"runners": {"base_image": "noble"}},
        {"lxd": {"profiles": ["default", "gpu"]}},
        {"proxy": {"http": "http://proxy.example.com:3128"}},
        {"github": {"path": "other-owner/test-repo"}},
        {"metrics": {"enabled": True}},
        {"flavor": "large-runner"},
    ],
)
def test_runner_hash_changes_with_what_shapes_a_runner(tmp_path, overrides):
    """The runner hash changes with any setting that shapes a runner.

    arrange: one setting that shapes a runner changed.
    act: hash.
    assert: differs.
    """
    assert runner_hash(tmp_path, **overrides) != runner_hash(tmp_path)


def test_runner_hash_differs_per_instance_type(tmp_path):
    """The runner hash differs between containers and VMs.

    arrange: one config.
    act: hash for container and VM.
    assert: different.
    """
    config = ManagerConfig.model_validate(settings(tmp_path))

    assert config_hash(config.runner_hash_input(InstanceType.CONTAINER)) != config_hash(
        config.runner_hash_input(InstanceType.VIRTUAL_MACHINE)
    )


def test_templates_directory_resolution(tmp_path, monkeypatch):
    """The templates directory comes from the setting, else the package's own templates.

    arrange: templates_dir, or not (with the dropped GITHUB_RUNNER_TEMPLATES set).
    act: read templates.
    assert: the setting wins, then the package's own templates (the environment is ignored).
    """
    monkeypatch.setenv("GITHUB_RUNNER_TEMPLATES", str(tmp_path / "from-env"))
    explicit = ManagerConfig.model_validate(
        settings(tmp_path, templates_dir=str(tmp_path / "explicit"))
    )
    default = ManagerConfig.model_validate(settings(tmp_path))

    assert explicit.templates == tmp_path / "explicit"
    assert (default.templates / "runner-start.sh.j2").is_file()
    assert (default.templates / "build-image.sh.j2").is_file()


def test_fifo_is_refused_without_waiting(tmp_path):
    """A named pipe given as the configuration is refused without waiting.

    arrange: a named pipe no one writes to.
    act: load_config.
    assert: refused at once as not a regular file (reading it would wait forever).
    """
    path = tmp_path / "config.fifo"
    os.mkfifo(path)

    with pytest.raises(ConfigError, match="is not a regular file"):
        load_config(path)


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null"])
def test_device_is_refused(tmp_path, target):
    """A device given as the configuration is refused, directly and through a symlink.

    arrange: a device, directly and through a symlink.
    act: load_config.
    assert: refused as not a regular file.
    """
    link = tmp_path / "config.yaml"
    link.symlink_to(target)

    for path in (Path(target), link):
        with pytest.raises(ConfigError, match="is not a regular file"):
            load_config(path)


def test_oversized_file_is_refused_without_reading_it_all(tmp_path):
    """A configuration file past the size limit is refused.

    arrange: a valid configuration padded past the size limit.
    act: load_config.
    assert: refused, saying the limit.
    """
    path = write(tmp_path, json.dumps(settings(tmp_path)) + "\n#" + "x" * MAX_CONFIG_BYTES)

    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)


def test_deeply_nested_yaml_is_a_config_error(tmp_path):
    """Deeply nested YAML is a ConfigError, not a RecursionError.

    arrange: a small file nested deeper than the parser's recursion.
    act: load_config.
    assert: ConfigError saying it is nested, not a RecursionError.
    """
    path = write(tmp_path, "runners:\n  labels: " + "[" * 50_000 + "]" * 50_000 + "\n")

    with pytest.raises(ConfigError, match="nested"):
        load_config(path)


@pytest.mark.parametrize("field", ["state_dir", "crash_log_dir", "report_path"])
def test_directory_under_a_regular_file_is_refused(tmp_path, field):
    """A directory setting below a regular file is refused naming the field.

    arrange: a directory setting below a regular file.
    act: load_config.
    assert: refused naming the field (creating it later would fail with an OSError).
    """
    blocker = tmp_path / "a-file"
    blocker.write_text("x")

    message = config_error(tmp_path, **{field: str(blocker / "below" / "x")})

    assert message.startswith(field), message


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_token_file_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    """A token_file that is not a regular file is refused at once.

    arrange: token_file is a FIFO or /dev/zero.
    act: read_token.
    assert: ConfigError naming github.token_file, at once.
    """
    if kind == "fifo":
        target = tmp_path / "token.fifo"
        os.mkfifo(target)
    else:
        target = Path("/dev/zero")
    path = write(
        tmp_path,
        json.dumps(
            settings(tmp_path, github={"path": "o/r", "token": None, "token_file": str(target)})
        ),
        "config.json",
    )
    config = load_config(path)

    with pytest.raises(ConfigError, match=r"github\.token_file"):
        config.github.read_token()
