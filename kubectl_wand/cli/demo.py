"""`kubectl wand demo`: the whole journey on a throwaway local container (engine/demo.py)."""

import json

import click

from kubectl_wand.cli.common import kube_options, status


@click.command("demo")
@click.option("--image", default="python:3.14-slim", show_default=True,
              help="Any image with python3 = 3.14 (the demo app is written into it).")
@click.option("--runtime", type=click.Choice(["docker", "podman"]), default="docker")
@kube_options
def command(image, runtime, **_):
    """Attach to an unprepared container, hit a breakpoint, read a variable, detach."""
    from kubectl_wand.engine.demo import run_demo

    run_demo(image, runtime, status, lambda locals_: click.echo(json.dumps(locals_, indent=2)))
