"""`kubectl wand validate TARGET`: a ✓/✗ checklist of what `attach` needs, with a remedy for
each failed line. Exit status 0 only if attach would work."""

import json

import click

from kubectl_wand.cli.common import kube_options, target_options
from kubectl_wand.safe_text import safe

MARK = {True: "✓", False: "✗", None: "-"}


def render(report) -> str:
    lines, section = [], None
    for c in report.checks:
        if c.section != section:
            section = c.section
            lines.append(("" if not lines else "\n") + safe(section, 300))
        # details quote the target (versions, paths, process names): shown escaped
        lines.append(f"  {MARK[c.ok]} {safe(c.name, 200)}: {safe(c.detail, 1000)}")
        if c.ok is False and c.remedy:
            lines.append(f"      remedy: {safe(c.remedy, 1000)}")
    lines.append("")
    lines.append(("✓ " if report.verdict else "✗ ") + safe(report.why, 1000))
    return "\n".join(lines)


@click.command("validate")
@click.argument("target")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@target_options
@kube_options
def command(target, output, pid, topts):
    """Check everything `attach` needs on TARGET, without changing it: kubectl and cluster
    versions, ephemeral containers, RBAC, Pod Security, the helper image, and per Python
    process its version, remote debugging, ptrace rights, a staging directory and debugpy.
    Never adds an ephemeral container. Exit status 0 only if attach would work."""
    from kubectl_wand.engine import validate

    report = validate.run(target, topts, pid)
    if output == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(render(report))
    raise SystemExit(0 if report.verdict else 1)
