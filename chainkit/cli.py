"""The `chainkit` command."""

from __future__ import annotations

import click

from chainkit import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chainkit")
def main() -> None:
    """chainkit: long-running LLM apps from typed tools and memories."""


if __name__ == "__main__":  # pragma: no cover
    main()
