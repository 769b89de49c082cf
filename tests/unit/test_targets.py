"""parse_target: every accepted form, and refusals that exit 2 with a helpful message."""

import pytest

from kubectl_wand.errors import UsageError, WandError
from kubectl_wand.targets import Target, parse_target


@pytest.mark.parametrize("text, backend, kind, name, pid, shown", [
    ("deploy/web", "kubernetes", "deployment", "web", None, "deployment/web"),
    ("deployment/web", "kubernetes", "deployment", "web", None, "deployment/web"),
    ("deployments/web", "kubernetes", "deployment", "web", None, "deployment/web"),
    ("DEPLOY/web", "kubernetes", "deployment", "web", None, "deployment/web"),
    ("sts/db-0.x", "kubernetes", "statefulset", "db-0.x", None, "statefulset/db-0.x"),
    ("statefulset/db", "kubernetes", "statefulset", "db", None, "statefulset/db"),
    ("ds/agent", "kubernetes", "daemonset", "agent", None, "daemonset/agent"),
    ("rs/web-7d9f8", "kubernetes", "replicaset", "web-7d9f8", None, "replicaset/web-7d9f8"),
    ("job/migrate", "kubernetes", "job", "migrate", None, "job/migrate"),
    ("svc/api", "kubernetes", "service", "api", None, "service/api"),
    ("service/api", "kubernetes", "service", "api", None, "service/api"),
    ("ksvc/hello", "kubernetes", "ksvc", "hello", None, "ksvc/hello"),
    ("services.serving.knative.dev/hello", "kubernetes", "ksvc", "hello", None, "ksvc/hello"),
    ("pod/web-abc12", "kubernetes", "pod", "web-abc12", None, "pod/web-abc12"),
    ("po/web-abc12", "kubernetes", "pod", "web-abc12", None, "pod/web-abc12"),
    ("web-abc12", "kubernetes", "pod", "web-abc12", None, "pod/web-abc12"),
    ("  web  ", "kubernetes", "pod", "web", None, "pod/web"),
    ("docker/web_1", "docker", None, "web_1", None, "docker/web_1"),
    ("Docker/My.Web-1", "docker", None, "My.Web-1", None, "docker/My.Web-1"),
    ("podman/web", "podman", None, "web", None, "podman/web"),
    ("pid/42", "local", None, None, 42, "pid/42"),
    ("PID/007", "local", None, None, 7, "pid/7"),
    ("local", "local", None, None, None, "local"),
])
def test_accepted(text, backend, kind, name, pid, shown):
    t = parse_target(text)
    assert t == Target(backend, name, kind=kind, pid=pid)
    assert str(t) == shown


def test_longest_kube_name_accepted_and_one_more_refused():
    assert parse_target("deploy/" + "a" * 253).name == "a" * 253
    with pytest.raises(UsageError):
        parse_target("deploy/" + "a" * 254)


@pytest.mark.parametrize("text, message, hint", [
    ("", "no target given", "pid/N"),
    ("   ", "no target given", "deploy/NAME"),
    (None, "no target given", "docker/NAME"),
    ("pid/0", "invalid PID in target pid/0", "N > 0"),
    ("pid/-1", "invalid PID in target pid/-1", "N > 0"),
    ("pid/abc", "invalid PID in target pid/abc", "N > 0"),
    ("pid/", "invalid PID", "N > 0"),
    ("pid/１２", "invalid PID in target pid/１２", "N > 0"),
    ("pid/4 2", "invalid PID", "N > 0"),
    ("foo/bar", "unsupported target kind foo in foo/bar", "supported: pod, deploy"),
    ("/web", "unsupported target kind", "docker/NAME"),
    ("deploy/web;rm -rf /", "invalid Kubernetes name", "lowercase"),
    ("deploy/$(id)", "invalid Kubernetes name", "lowercase"),
    ("deploy/`id`", "invalid Kubernetes name", "lowercase"),
    ("deploy/a\nb", "invalid Kubernetes name in target 'deploy/a\\nb'", "lowercase"),
    ("deploy/Web", "invalid Kubernetes name in target deploy/Web", "lowercase"),
    ("Web", "invalid Kubernetes name in target Web", "lowercase"),
    ("deploy/wéb", "invalid Kubernetes name", "lowercase"),
    ("deploy/web-", "invalid Kubernetes name", "lowercase"),
    ("deploy/", "invalid Kubernetes name", "lowercase"),
    ("deploy/a/b", "invalid Kubernetes name", "lowercase"),
    ("pod/a;b", "invalid Kubernetes name", "lowercase"),
    ("a;b", "invalid Kubernetes name", "lowercase"),
    ("docker/web;id", "invalid container name in target docker/web;id", "`docker ps`"),
    ("docker/$(id)", "invalid container name", "`docker ps`"),
    ("podman/`id`", "invalid container name", "`podman ps`"),
    ("docker/a\nb", "invalid container name in target 'docker/a\\nb'", "`docker ps`"),
    ("docker/wéb", "invalid container name", "`docker ps`"),
    ("docker/-web", "invalid container name", "`docker ps`"),
    ("docker/", "invalid container name", "`docker ps`"),
])
def test_rejected(text, message, hint):
    with pytest.raises(UsageError) as ei:
        parse_target(text)
    e = ei.value
    assert isinstance(e, WandError)
    assert e.exit_code == 2
    assert message in e.message
    assert hint in e.hint


def test_unprintable_target_is_shown_quoted():
    with pytest.raises(UsageError) as ei:
        parse_target("deploy/a\x1b[31mb")
    assert "'deploy/a\\x1b[31mb'" in ei.value.message
    assert "\x1b" not in ei.value.message
