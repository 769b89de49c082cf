"""The subcommands and the module of each: a leaf both the CLI and completion read (so neither
imports the other). One module per subcommand under kubectl_wand/cli/."""

COMMANDS = {
    "ps": "kubectl_wand.cli.ps",
    "attach": "kubectl_wand.cli.attach",
    "exec": "kubectl_wand.cli.exec",
    "shell": "kubectl_wand.cli.shell",
    "pdb": "kubectl_wand.cli.pdb",
    "demo": "kubectl_wand.cli.demo",
    "loglevel": "kubectl_wand.cli.loglevel",
    "stacks": "kubectl_wand.cli.stacks",
    "trace": "kubectl_wand.cli.trace",
    "profile": "kubectl_wand.cli.profile",
    "validate": "kubectl_wand.cli.validate",
    "completion": "kubectl_wand.cli.completion",
}
