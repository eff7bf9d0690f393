# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Rendering of the jinja2 templates in the project's `templates/` directory."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Any

import jinja2

# The files rendered into every runner instance; their content is part of the runner
# configuration hash, so a charm upgrade that changes them replaces idle runners.
RUNNER_TEMPLATES = (
    "runner-start.sh.j2",
    "runner.service.j2",
    "runner-env.j2",
    "environment.j2",
    "pre-job.sh.j2",
    "post-job.sh.j2",
    "aproxy.nft.j2",
)


class TemplateRenderer:
    """Renders templates strictly: an undefined variable is an error, not an empty string."""

    def __init__(self, directory: Path):
        """Load the templates.

        Args:
            directory: the templates directory.
        """
        self._directory = directory
        # No autoescape: these are shell scripts, systemd units and env files, not HTML;
        # shell values go through the `shquote` filter instead.
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # noqa: S701 - not HTML, see above
            keep_trailing_newline=True,
        )
        self._env.filters["shquote"] = lambda value: shlex.quote(str(value))

    def render(self, template: str, **context: Any) -> str:
        """Render one template.

        Args:
            template: the template file name.
            context: the template variables.

        Returns:
            The rendered text.
        """
        return self._env.get_template(template).render(**context)

    def runner_templates_hash(self) -> str:
        """Hash the templates rendered into runners.

        Returns:
            A hex digest.
        """
        digest = hashlib.sha256()
        for name in RUNNER_TEMPLATES:
            digest.update(name.encode())
            digest.update((self._directory / name).read_bytes())
        return digest.hexdigest()
