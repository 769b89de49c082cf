"""Editor hand-off: launch.json merge (JSONC kept byte for byte) and the nvim-dap snippet."""

import json
import os
import re
import stat

import pytest

from kubectl_wand import editors
from kubectl_wand.editors import JSONCError, merge_launch_json, parse_jsonc
from kubectl_wand.engine.launch import vscode_config
from kubectl_wand.errors import WandError

CFG = vscode_config("kubectl-wand: deploy/app", "127.0.0.1", 5679, "/srv/app")

USER_FILE = """\
{
    // Use IntelliSense to learn about possible attributes.
    "version": "0.2.0",
    /* block
       comment */
    "configurations": [
        {
            "name": "Python: current file", // the default one
            "type": "debugpy",
            "request": "launch",
            "program": "${file}",
        },
        {
            "name": "kubectl-wand: deploy/app",
            "type": "debugpy",
            "request": "attach",
            "connect": {"host": "127.0.0.1", "port": 1111},
        },
        {
            "name": "tests // not a comment, /* nor this */",
            "type": "debugpy",
            "request": "launch",
        }, // last one
    ],
    "compounds": [],
}
"""


def strip_jsonc(text):
    return parse_jsonc(text).value


def names(text):
    return [c["name"] for c in strip_jsonc(text)["configurations"]]


def test_create_when_absent_or_empty():
    for before in (None, "", "  \n"):
        text, what = merge_launch_json(before, CFG)
        assert what == "created"
        assert json.loads(text) == {"version": "0.2.0", "configurations": [CFG]}


def test_replace_same_name_keeps_everything_else():
    text, what = merge_launch_json(USER_FILE, CFG)
    assert what == "replaced"
    assert names(text) == ["Python: current file", "kubectl-wand: deploy/app",
                           "tests // not a comment, /* nor this */"]
    assert strip_jsonc(text)["configurations"][1] == CFG
    old_entry = USER_FILE[USER_FILE.index('        {\n            "name": "kubectl-wand'):]
    old_entry = old_entry[:old_entry.index("        },") + len("        }")]
    # every byte outside the replaced entry is unchanged: comments, trailing commas, layout
    start = USER_FILE.index(old_entry)
    assert text.startswith(USER_FILE[:start])
    assert text.endswith(USER_FILE[start + len(old_entry):])
    assert '            "name": "kubectl-wand: deploy/app",\n' in text  # indented like its peers


def test_add_keeps_trailing_comma_style_and_comments():
    cfg = dict(CFG, name="kubectl-wand: docker/web")
    text, what = merge_launch_json(USER_FILE, cfg)
    assert what == "added"
    assert names(text)[-1] == "kubectl-wand: docker/web"
    for kept in ("// Use IntelliSense", "/* block\n       comment */", "// the default one",
                 "}, // last one", '"compounds": [],'):
        assert kept in text
    # the new entry follows the comment on the last entry's line, with a trailing comma too
    assert re.search(r"\}, // last one\n        \{\n            \"name\": \"kubectl-wand: docker/web\"",
                     text)
    assert text.rstrip().endswith("    ],\n    \"compounds\": [],\n}")
    again, what = merge_launch_json(text, cfg)  # idempotent
    assert (again, what) == (text, "replaced")


def test_add_without_trailing_comma():
    before = '{\n  "version": "0.2.0",\n  "configurations": [\n    {"name": "a"} // mine\n  ]\n}\n'
    text, what = merge_launch_json(before, CFG)
    assert what == "added"
    assert text.startswith('{\n  "version": "0.2.0",\n  "configurations": [\n'
                           '    {"name": "a"}, // mine\n    {\n      "name": "kubectl-wand')
    assert names(text) == ["a", CFG["name"]]
    assert text.endswith('  ]\n}\n')


@pytest.mark.parametrize("before", [
    '{"version": "0.2.0", "configurations": []}',
    '{\n\t"configurations": [\n\t\t// nothing yet\n\t]\n}',
    '{\n    "version": "0.2.0"\n}',
    '{\n    "version": "0.2.0", // v\n}',
    "{}",
    "// only a comment\n{ /* empty */ }",
])
def test_other_shapes(before):
    text, what = merge_launch_json(before, CFG)
    assert what == "added"
    doc = strip_jsonc(text)
    assert doc["configurations"] == [CFG]
    for comment in re.findall(r"//[^\n]*|/\*.*?\*/", before, re.S):
        assert comment in text


def test_tabs_are_kept():
    before = '{\n\t"configurations": [\n\t\t{\n\t\t\t"name": "a"\n\t\t}\n\t]\n}\n'
    text, _ = merge_launch_json(before, CFG)
    assert '\n\t\t{\n\t\t\t"name": "kubectl-wand: deploy/app",' in text
    assert "    " not in text


@pytest.mark.parametrize("bad", [
    '{"configurations": [}',
    '{"configurations": [{"name": "a"} {"name": "b"}]}',
    '[1, 2]',
    '{"configurations": {}}',
    '{"a": 1} trailing',
    '{"a": /* unterminated }',
    "{'single': 1}",
])
def test_invalid_files_are_refused(bad):
    with pytest.raises(JSONCError):
        merge_launch_json(bad, CFG)


def test_write_creates_replaces_and_keeps_mode(tmp_path):
    path = editors.launch_json_path(str(tmp_path))
    assert path == tmp_path / ".vscode" / "launch.json"
    assert editors.write_launch_json(path, CFG) == "created"
    assert json.loads(path.read_text())["configurations"] == [CFG]
    path.write_text(USER_FILE)
    path.chmod(0o640)
    assert editors.write_launch_json(path, CFG) == "replaced"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert "// the default one" in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["launch.json"]  # no temp file left
    assert editors.launch_json_path(str(tmp_path / ".vscode")) == path
    assert editors.launch_json_path(str(tmp_path / "x.json")) == tmp_path / "x.json"
    assert str(editors.launch_json_path(None)) == os.path.join(".vscode", "launch.json")


def test_write_refuses_a_broken_file_untouched(tmp_path):
    path = tmp_path / "launch.json"
    path.write_text('{"configurations": [')
    with pytest.raises(WandError) as ei:
        editors.write_launch_json(path, CFG)
    assert ei.value.exit_code == 2 and "line 1" in ei.value.message
    assert path.read_text() == '{"configurations": ['


def test_nvim_dap_snippet():
    cfg = vscode_config('kubectl-wand: "x"\\y', "127.0.0.1", 40000, "/app\n\x01")
    lua = editors.nvim_dap_snippet(cfg)
    assert lua.startswith("require('dap').run({\n")
    assert 'type = "python",' in lua and 'request = "attach",' in lua
    assert 'name = "kubectl-wand: \\"x\\"\\\\y",' in lua
    assert "port = 40000," in lua and 'host = "127.0.0.1",' in lua
    assert "localRoot = vim.fn.getcwd()," in lua
    assert 'remoteRoot = "/app\\n\\001",' in lua
    assert "justMyCode = false," in lua
    assert lua.count("{") == lua.count("}")


# ------------------------------------------------------------------ values from the target

@pytest.mark.parametrize("root, why", [
    ("/app/${command:workbench.action.terminal.new}", "${"),
    ("/app/${env:HOME}", "${"),
    ("app/src", "absolute"),
    ("/app/\x1b]0;x\x07", "control"),
    ("/app/\u202egnp.py", "control"),
    ('/app/"quoted"', "quotes"),
    ("/app/a\nb", "control"),
    ("/app\\", "quotes"),
    ("/" + "a" * 2000, "longer"),
])
def test_safe_config_refuses_hostile_remote_root(root, why):
    cfg = vscode_config("kubectl-wand: docker/app", "127.0.0.1", 5679, root)
    out, warnings = editors.safe_config(cfg, fallbacks=["/srv"])
    assert out["pathMappings"][0]["remoteRoot"] == "/srv"
    assert len(warnings) == 1 and why in warnings[0] and "/srv" in warnings[0]
    assert "\x1b" not in warnings[0] and "\n" not in warnings[0]
    assert out["pathMappings"][0]["localRoot"] == "${workspaceFolder}"  # ours, kept
    assert cfg["pathMappings"][0]["remoteRoot"] == root  # the input is not changed
    lua = editors.nvim_dap_snippet(out)
    assert "${" not in lua and '"/srv"' in lua


def test_safe_config_fallback_also_checked():
    cfg = vscode_config("n", "127.0.0.1", 1, "/a/${env:X}")
    out, _ = editors.safe_config(cfg, fallbacks=["/b/${env:X}", "rel"])
    assert out["pathMappings"][0]["remoteRoot"] == "/"


@pytest.mark.parametrize("root", ["/app", "/srv/my app", "/home/ü/proj", "/opt/app-1.2_x"])
def test_safe_config_keeps_legitimate_roots(root):
    cfg = vscode_config("kubectl-wand: deploy/app", "127.0.0.1", 5679, root)
    out, warnings = editors.safe_config(cfg)
    assert out == cfg and warnings == []


def test_safe_config_name():
    cfg = vscode_config("kubectl-wand: ${env:X}", "127.0.0.1", 5679, "/app")
    out, warnings = editors.safe_config(cfg)
    assert out["name"] == "kubectl-wand" and warnings
