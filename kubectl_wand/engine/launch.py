"""Editor configurations for a forwarded debug port."""


def vscode_config(name, host, port, remote_root, local_root="${workspaceFolder}"):
    """A VS Code `launch.json` attach entry (type debugpy)."""
    return {
        "name": name,
        "type": "debugpy",
        "request": "attach",
        "connect": {"host": host, "port": port},
        "pathMappings": [{"localRoot": local_root, "remoteRoot": remote_root}],
        "justMyCode": False,
    }
