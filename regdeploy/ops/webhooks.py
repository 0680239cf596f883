"""The ``webhooks`` use cases: send each endpoint a sample push, receive notifications, run the relay.

The relay's foreground loop (wait for a signal, then stop) is the command line's; building, checking
and starting the relay from its configuration is here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regdeploy.errors import InputError, RegdeployError

if TYPE_CHECKING:
    from regdeploy.ops.run import HostJob
    from regdeploy.webhooks.envelope import Envelope
    from regdeploy.webhooks.listener import Received
    from regdeploy.webhooks.relay.config import RelayConfig
    from regdeploy.webhooks.relay.service import Relay
    from regdeploy.webhooks.sender import Delivery


# --- test ------------------------------------------------------------------------------------------


def send_samples(
    inventory: Path | None, limit: str | None, forks: int, names: tuple[str, ...], repository: str, tag: str
) -> dict[str, Any]:
    """Send a sample push of ``repository:tag`` to each endpoint (only *names* if given), as each
    host's registry would; ``webhooks test --json``'s object."""
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.run import prepare
    from regdeploy.webhooks.envelope import media_type
    from regdeploy.webhooks.sender import sample_for, test_endpoints

    run = prepare(inventory, limit, render_files=False)
    known = {e.name for job in run.jobs for e in job.materials.endpoints}
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none are configured"
        raise InputError(f"--endpoint {unknown[0]!r}: no such notification endpoint (known: {listed})")

    def one(job: HostJob) -> list[Delivery]:
        from regdeploy.materials.host import RELAY_ENDPOINT

        envelope = sample_for(job.name, job.vars, job.spec, repository, tag)
        others = [e for e in job.materials.endpoints if e.name != RELAY_ENDPOINT]
        out = test_endpoints(others, envelope, names, run.masker.mask)
        if job.spec.relay is not None and (not names or RELAY_ENDPOINT in names):
            out.append(through_relay(job, envelope, run.masker.mask))
        return out

    results = fan_out(run.jobs, lambda j: j.name, one, forks)
    versions = {job.name: job.spec.version for job in run.jobs}
    hosts: dict[str, dict[str, Any]] = {}
    for name, result in results.items():
        if isinstance(result, RegdeployError):
            hosts[name] = {"ok": False, "endpoints": [], "error": run.masker.mask(str(result))}
            continue
        hosts[name] = {
            "ok": all(d.ok for d in result),
            "media_type": media_type(versions[name]),
            "endpoints": [d.as_json() for d in result],
            "error": None,
        }
    return {"ok": all(h["ok"] for h in hosts.values()), "hosts": hosts}


# The deployed relay listens on its registry's private network only: the sample reaches it from
# inside its own container, as the registry's would, with the token read there from its file.
_RELAY_POST = """
import http.client, sys, time
token = open({token_file!r}).read()
conn = http.client.HTTPConnection("127.0.0.1", {port}, timeout=10)
start = time.monotonic()
conn.request("POST", "/events", body=sys.argv[1].encode(),
             headers={{"Content-Type": sys.argv[2], "User-Agent": "Go-http-client/1.1", {header!r}: token}})
answer = conn.getresponse()
text = " ".join(answer.read(300).decode(errors="replace").split())
print(answer.status, round(time.monotonic() - start, 4), answer.reason, text)
"""


def through_relay(job: HostJob, envelope: Envelope, mask: Callable[[str], str]) -> Delivery:
    """``webhooks test`` for the deployed relay (``registry.relay``): post the sample inside its unit."""
    import time

    from regdeploy.deploy.layout import RELAY_CONTAINER_DIR, RELAY_PORT
    from regdeploy.deploy.units import relay_name
    from regdeploy.image.sidecar import PYTHON_IN_IMAGE
    from regdeploy.materials.host import RELAY_ENDPOINT, RELAY_TOKEN_HEADER
    from regdeploy.transport import open_transport
    from regdeploy.webhooks.sender import Delivery

    unit = relay_name(job.spec)
    url = f"http://{unit}:{RELAY_PORT}/events"
    script = _RELAY_POST.format(token_file=f"{RELAY_CONTAINER_DIR}/inbound.token", port=RELAY_PORT,
                                header=RELAY_TOKEN_HEADER)  # fmt: skip
    transport = open_transport(job.name, job.vars)
    start = time.monotonic()
    try:
        argv = [PYTHON_IN_IMAGE, "-c", script, envelope.body.decode(), envelope.media_type]
        code, output = transport.engine().exec_run(unit, argv)
    except RegdeployError as exc:
        why = getattr(exc, "explanation", None) or str(exc)
        detail = f"the relay unit {unit} cannot be reached: {why} (run `regdeploy up`)"
        return Delivery(RELAY_ENDPOINT, url, True, None, time.monotonic() - start, mask(detail))
    finally:
        transport.close()
    words = output.decode(errors="replace").split(maxsplit=3)
    if code != 0 or len(words) < 3 or not words[0].isdigit():
        detail = " ".join(output.decode(errors="replace").split())[-300:] or f"exit code {code}"
        return Delivery(RELAY_ENDPOINT, url, True, None, time.monotonic() - start, mask(detail))
    status, seconds = int(words[0]), float(words[1])
    detail = " ".join(words[2:])
    return Delivery(RELAY_ENDPOINT, url, True, status, seconds, mask(detail))


# --- listen ----------------------------------------------------------------------------------------


def listen(
    bind: str,
    port: int,
    count: int | None,
    timeout: float | None,
    fail_first: int,
    on_event: Callable[[Received], None],
    say: Callable[[str], None],
) -> tuple[bool, int]:
    """Receive notifications on *bind*:*port* until *count* events, *timeout* or Ctrl-C; (whether it
    ended as asked, how many events arrived). Ctrl-C is the person watching stopping it: not a failure."""
    from regdeploy.webhooks.listener import Listener

    try:
        listener = Listener(bind, port, count=count, fail_first=fail_first, on_event=on_event)
    except OSError as exc:
        raise RegdeployError(f"cannot listen on {bind}:{port}: {exc.strerror or exc}") from None
    with listener:
        say(f"listening on {listener.url}")
        try:
            reached = listener.wait(timeout)
        except KeyboardInterrupt:
            reached = True
    return reached, len(listener.events)


# --- relay -----------------------------------------------------------------------------------------


def relay_config(
    config_path: Path | None,
    bind: str | None,
    port: int | None,
    queue_dir: Path | None,
    github_repo: str | None,
    token_env: str | None,
    token_file: Path | None,
    api_url: str | None,
    event_type: str | None,
    repositories: tuple[str, ...],
    tags: tuple[str, ...],
) -> RelayConfig:
    """The relay's configuration: *config_path*'s, or one GitHub target from the options; *bind*,
    *port* and *queue_dir* override the file's."""
    from regdeploy.webhooks.relay.config import parse_config, read_config_file

    target_options = {
        "--github": github_repo, "--token-env": token_env, "--token-file": token_file, "--api-url": api_url,
        "--event-type": event_type, "--repository": repositories or None, "--tag": tags or None,
    }  # fmt: skip
    raw: Any
    if config_path is not None:
        given = [name for name, value in target_options.items() if value is not None]
        if given:
            raise InputError(f"{given[0]}: describe targets in {config_path}, or leave out --config")
        raw = read_config_file(config_path)
        source, base = str(config_path), config_path.parent
    else:
        raw = _raw_from_options(
            github_repo, token_env, token_file, api_url, event_type, repositories, tags, queue_dir
        )
        source, base = "command line", None
    if isinstance(raw, dict):
        if bind is not None or port is not None:
            listen = dict(raw.get("listen") or {})
            listen.update({k: v for k, v in (("bind", bind), ("port", port)) if v is not None})
            raw["listen"] = listen
        if queue_dir is not None:
            raw["queue"] = {**(raw.get("queue") or {}), "dir": str(queue_dir)}
    return parse_config(raw, source, base)


def _raw_from_options(
    github_repo: str | None,
    token_env: str | None,
    token_file: Path | None,
    api_url: str | None,
    event_type: str | None,
    repositories: tuple[str, ...],
    tags: tuple[str, ...],
    queue_dir: Path | None,
) -> dict[str, Any]:
    if github_repo is None:
        raise InputError("give --config FILE, or --github OWNER/REPO with --token-env or --token-file")
    if (token_env is None) == (token_file is None):
        raise InputError("--github needs exactly one of --token-env VARIABLE or --token-file PATH")
    if queue_dir is None:
        raise InputError("--queue-dir is required without --config: where undelivered events are kept")
    target: dict[str, Any] = {
        "name": "github",
        "type": "github",
        "repository": github_repo,
        "token": {"env": token_env} if token_env else {"file": str(token_file)},
        "repositories": list(repositories) or None,
        "tags": list(tags) or None,
    }
    if api_url is not None:
        target["api_url"] = api_url
    if event_type is not None:
        target["event_type"] = event_type
    return {"targets": [target]}


def check_relay(config: RelayConfig) -> None:
    """Raise for a target whose secrets cannot be resolved; starts nothing."""
    from regdeploy.materials.secrets import Masker, SecretResolver
    from regdeploy.materials.state import StateStore
    from regdeploy.webhooks.relay.service import Relay

    Relay.check(config, SecretResolver(StateStore(config.queue_dir), Masker()))


def start_relay(config: RelayConfig, log: Callable[[str], None]) -> Relay:
    """The relay, listening and delivering in the background until its ``stop()``."""
    from regdeploy.materials.secrets import Masker, SecretResolver
    from regdeploy.materials.state import StateStore
    from regdeploy.webhooks.relay.service import Relay

    masker = Masker()
    resolver = SecretResolver(StateStore(config.queue_dir), masker)
    try:
        relay = Relay(config, resolver, masker, log)
        relay.start()
    except OSError as exc:
        where = exc.filename or f"{config.bind}:{config.port}"
        raise RegdeployError(f"relay cannot start: {where}: {exc.strerror or exc}") from None
    return relay
