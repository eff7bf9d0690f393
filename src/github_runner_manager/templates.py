# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Rendering of the jinja2 templates the package ships in its `templates/` directory.

The templates are package data: the runner files and the image build script live inside the
package (`github_runner_manager/templates/`) and are read through `importlib.resources`, so the
package finds them wherever it is installed. The charm's own systemd unit templates are the
charm's, in the project's root `templates/`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import shlex
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
    from importlib.abc import Traversable

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


def package_templates() -> Traversable:
    """The templates directory shipped inside the package.

    Returns:
        The directory, as package data.
    """
    return importlib.resources.files(__package__) / "templates"


class TemplateRenderer:
    """Renders templates strictly: an undefined variable is an error, not an empty string."""

    def __init__(self, directory: Traversable | None = None):
        """Load the templates.

        Args:
            directory: the templates directory (the package's own by default).
        """
        self._directory = directory if directory is not None else package_templates()
        # No autoescape: these are shell scripts, systemd units and env files, not HTML;
        # shell values go through the `shquote` filter instead.
        self._env = jinja2.Environment(
            loader=jinja2.FunctionLoader(self._source),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # noqa: S701 - not HTML, see above
            keep_trailing_newline=True,
        )
        self._env.filters["shquote"] = lambda value: shlex.quote(str(value))

    def _source(self, name: str) -> str | None:
        """A template's text (None when there is no such template)."""
        path = self._directory / name
        return path.read_text(encoding="utf-8") if path.is_file() else None

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
