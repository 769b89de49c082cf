"""`kubectl wand completion bash|zsh|fish`: completion for `kubectl-wand` used on its own.

Inside kubectl (`kubectl wand <TAB>`) nothing is needed beyond kubectl's own completion and
`kubectl_complete-wand` on PATH. These scripts serve the same candidates (kubectl_wand.completion)
by calling `kubectl-wand __complete WORD… CURRENT`.
"""

import click

BASH = r'''# bash completion for kubectl-wand; load with: source <(kubectl-wand completion bash)
_kubectl_wand() {
    local line="${COMP_LINE:0:COMP_POINT}" out directive cur prefix c v
    local -a words cands
    # Split like a shell user would (contexts may hold ':' and '=', which bash breaks on).
    read -r -a words <<< "$line"
    [[ "$line" =~ [[:space:]]$ || ${#words[@]} -eq 0 ]] && words+=("")
    cur="${words[${#words[@]}-1]}"
    out=$("${words[0]}" __complete "${words[@]:1}" 2>/dev/null) || return 0
    directive="${out##*:}"
    [[ "$out" == *$'\n'* ]] && out="${out%$'\n'*}" || out=""
    # bash replaces only its own current word (after the last ':' or '='): drop the rest.
    prefix="${cur%"${COMP_WORDS[COMP_CWORD]}"}"
    COMPREPLY=()
    while IFS= read -r c; do
        [[ -z "$c" ]] && continue
        v="${c%%$'\t'*}"
        COMPREPLY+=("${v#"$prefix"}")
    done <<< "$out"
    (( directive & 2 )) && compopt -o nospace 2>/dev/null
    if (( ${#COMPREPLY[@]} == 0 )) && ! (( directive & 4 )); then
        compopt -o default 2>/dev/null
    fi
    return 0
}
complete -F _kubectl_wand kubectl-wand
'''

ZSH = r'''#compdef kubectl-wand
# zsh completion for kubectl-wand; load with: source <(kubectl-wand completion zsh)
# (after compinit), or save as _kubectl-wand in a directory of $fpath.
_kubectl_wand() {
    local out directive l v d
    local -a lines cands
    out=$(${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    lines=("${(@f)out}")
    directive=${lines[-1]#:}
    lines=("${(@)lines[1,-2]}")
    for l in "${lines[@]}"; do
        [[ -z $l ]] && continue
        v=${l%%$'\t'*}
        v=${v//:/\\:}
        if [[ $l == *$'\t'* ]]; then
            d=${l#*$'\t'}
            cands+=("$v:$d")
        else
            cands+=("$v")
        fi
    done
    if (( ${#cands} )); then
        if (( directive & 2 )); then
            _describe -t kubectl-wand 'kubectl wand' cands -S ''
        else
            _describe -t kubectl-wand 'kubectl wand' cands
        fi
    elif (( ! (directive & 4) )); then
        _files
    fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _kubectl_wand "$@"
else
    compdef _kubectl_wand kubectl-wand
fi
'''

FISH = r'''# fish completion for kubectl-wand; load with: kubectl-wand completion fish | source
# (or save as ~/.config/fish/completions/kubectl-wand.fish)
function __kubectl_wand_complete
    set -l args (commandline -opc) (commandline -ct)
    set -l out ($args[1] __complete $args[2..-1] 2>/dev/null)
    or return
    set -l directive (string replace -r '^:' '' -- $out[-1])
    set -e out[-1]
    if test (count $out) -eq 0
        if test (math "bitand($directive, 4)") -eq 0
            __fish_complete_path (commandline -ct)
        end
        return
    end
    printf '%s\n' $out
end
complete -c kubectl-wand -f -a '(__kubectl_wand_complete)'
'''

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}


@click.command("completion")
@click.argument("shell", type=click.Choice(sorted(SCRIPTS)))
def command(shell):
    """Print a completion script for SHELL (for `kubectl-wand` run on its own).

    \b
    Inside kubectl, `kubectl wand <TAB>` needs only kubectl's own completion
    (`source <(kubectl completion bash)`) and `kubectl_complete-wand` on PATH
    (pip/uv install it; krew users: see `kubectl krew info wand`).
    \b
    bash:  source <(kubectl-wand completion bash)
    zsh:   source <(kubectl-wand completion zsh)      # after compinit
    fish:  kubectl-wand completion fish | source
    """
    click.echo(SCRIPTS[shell], nl=False)
