"""The click entry point: `kubectl wand …` (installed as kubectl-wand)."""

import os
import sys

import click

from kubectl_wand import __version__
from kubectl_wand.commands import COMMANDS  # the leaf registry, shared with completion
from kubectl_wand.errors import WandError
from kubectl_wand.safe_text import safe_lines


class LazyGroup(click.Group):
    """Imports a subcommand's module only when it runs, keeping TAB completion fast."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        mod = COMMANDS.get(name)
        if mod is None:
            return None
        import importlib

        return importlib.import_module(mod).command


def prog_name():
    """`kubectl wand` when kubectl ran us as a plugin, else our own name.

    kubectl (checked with 1.32) sets no variable for plugins: it execs the file it found on
    PATH with argv[0] = that path, so the basename (kubectl-wand, also the zipapp's) tells.
    """
    base = os.path.basename(sys.argv[0]) if sys.argv else "kubectl-wand"
    if base.startswith("kubectl-") or os.environ.get("KUBECTL_PLUGINS_CALLER"):
        return "kubectl wand"
    if base == "__main__.py":
        return "python -m kubectl_wand"
    return base


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kubectl-wand")
def cli():
    """Attach a debugger to, or run code in, a live Python 3.14 process.

    \b
    Targets: deploy/NAME, pod/NAME (or NAME), sts/, ds/, rs/, job/, svc/, ksvc/,
             docker/NAME, podman/NAME, pid/N, local (for ps).
    """


def render_error(e: WandError):
    click.secho(f"error: {safe_lines(e.message)}", fg="red", err=True,
                color=None if sys.stderr.isatty() and
                not os.environ.get("NO_COLOR") else False)
    if e.hint:
        click.echo(f"hint: {safe_lines(e.hint)}", err=True)


def main():
    if sys.argv[1:2] == ["__complete"] or os.path.basename(sys.argv[0]).startswith(
            "kubectl_complete-"):  # kubectl's plugin completion protocol, without click
        from kubectl_wand import completion

        sys.exit(completion.main(sys.argv[2:] if sys.argv[1:2] == ["__complete"]
                                 else sys.argv[1:]))
    try:
        cli.main(prog_name=prog_name(), standalone_mode=False)
    except WandError as e:
        render_error(e)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
