#!/usr/bin/env bash
# Set up a Debian 12 machine (fresh or not) for regdeploy development and CI. Run as root; idempotent:
# on a machine that is already set up it changes nothing and takes a couple of seconds.
#
#   1. apt packages: docker.io docker-registry skopeo podman openssh-server openssl curl ca-certificates iproute2
#      git debootstrap (builds the lab-host image the fleet tests use), redis-server haproxy (their binaries
#      become the redis and haproxy test images, `regdeploy image build --service`; their packages' daemons
#      are kept from starting), (+ python3, python3-venv when needed); `apt-get update` only when something
#      is missing
#   2. dockerd: started in the background (no systemd) when /var/run/docker.sock does not answer
#   3. .venv with `pip install -e '.[test]'`, re-run only when pyproject.toml changed (sha256 stamp in .venv)
#   4. the default image registry:2: pulled if possible, else built from Debian's /usr/bin/docker-registry
#
# Environment: REGDEPLOY_SETUP_NO_PULL=1 skips the `docker pull registry:2` attempt (known air-gapped host);
# REGDEPLOY_DOCKERD_WAIT=SECONDS (default 60) is how long to wait for a started dockerd to answer.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$(pwd)
VENV="$REPO_ROOT/.venv"
STAMP="$VENV/.regdeploy-pyproject.sha256"
DOCKERD_LOG=/var/log/regdeploy-dockerd.log
DOCKERD_WAIT=${REGDEPLOY_DOCKERD_WAIT:-60}
DEFAULT_IMAGE=registry:2
REGISTRY_BINARY=/usr/bin/docker-registry

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" -eq 0 ] || die "$1 needs root: run this script as root (sudo bash scripts/setup.sh)"; }

# --- 1. apt packages ------------------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

apt_updated=0
apt_install() {
    need_root "installing $*"
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    if [ "$apt_updated" -eq 0 ]; then
        say "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
    say "apt-get install $*"
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Packages whose postinst starts a daemon where an init system runs (invoke-rc.d, deb-systemd-invoke). Only
# their binaries are wanted (the tests run them in containers, on ports of their own): nothing may be left
# listening on the machine. Without an init system invoke-rc.d already refuses ("No init system and
# policy-rc.d missing! Defaulting to block."); elsewhere a policy-rc.d that says 101 (forbidden) does, for
# that one apt-get call, and what still started (an existing policy-rc.d allowed it) is stopped by pidfile.
no_daemon_packages=(redis-server haproxy)
POLICY_RC=/usr/sbin/policy-rc.d
declare -A daemon_pidfile=([redis-server]=/run/redis/redis-server.pid [haproxy]=/run/haproxy.pid)

apt_install_no_daemons() {
    need_root "installing $*"
    local ours=0 name pid
    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\n# from scripts/setup.sh, removed after its apt-get\nexit 101\n' >"$POLICY_RC"
        chmod 755 "$POLICY_RC"
        ours=1
        trap 'rm -f "$POLICY_RC"' EXIT # even when apt-get fails
    fi
    apt_install "$@"
    if [ "$ours" -eq 1 ]; then
        rm -f "$POLICY_RC"
        trap - EXIT
    fi
    for name in "$@"; do
        pid=$(cat "${daemon_pidfile[$name]:-/nonexistent}" 2>/dev/null || true)
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
        say "stopping the $name daemon its package started (pid $pid)"
        # By pidfile, not /etc/init.d/NAME stop: without CAP_SYS_PTRACE (a container) its start-stop-daemon
        # cannot read /proc/PID/exe of a daemon run as another user, matches nothing and says ok.
        if [ -d /run/systemd/system ]; then
            systemctl stop "$name" || true
        fi
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        ! kill -0 "$pid" 2>/dev/null || die "the $name daemon (pid $pid) did not stop"
    done
}

packages=(docker.io docker-registry skopeo podman openssh-server openssl curl ca-certificates iproute2 git debootstrap)
command -v python3 >/dev/null 2>&1 || packages+=(python3)
missing=()
for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
missing_no_daemon=()
for pkg in "${no_daemon_packages[@]}"; do
    installed "$pkg" || missing_no_daemon+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"
[ "${#missing_no_daemon[@]}" -eq 0 ] || apt_install_no_daemons "${missing_no_daemon[@]}"
if [ "${#missing[@]}" -eq 0 ] && [ "${#missing_no_daemon[@]}" -eq 0 ]; then
    say "packages present (${packages[*]} ${no_daemon_packages[*]})"
fi

# --- 2. dockerd -----------------------------------------------------------------------------------------
docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

if docker_answers; then
    say "dockerd answers on /var/run/docker.sock"
else
    need_root "starting dockerd"
    say "starting dockerd in the background (log: $DOCKERD_LOG)"
    setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
    dockerd_pid=$!
    for _ in $(seq 1 "$DOCKERD_WAIT"); do
        docker_answers && break
        kill -0 "$dockerd_pid" 2>/dev/null || break # it exited: no point in waiting
        sleep 1
    done
    if ! docker_answers; then
        echo "setup: ---- last lines of $DOCKERD_LOG ----" >&2
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        if kill -0 "$dockerd_pid" 2>/dev/null; then
            die "dockerd (pid $dockerd_pid) did not answer within $DOCKERD_WAIT s"
        fi
        die "dockerd exited before answering (log above)"
    fi
    say "dockerd is up ($(docker version --format '{{.Server.Version}}'))"
fi

# --- 3. the virtualenv ----------------------------------------------------------------------------------
venv_works() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; }

if ! venv_works; then
    say "creating $VENV"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
fi

want=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
# The package must import from the repo (not just from the cwd): run the check from / .
package_imports() { (cd / && "$VENV/bin/python" -c 'import regdeploy, sys; sys.exit(regdeploy.__file__ is None)') 2>/dev/null; }
if [ "$want" = "$have" ] && [ -x "$VENV/bin/regdeploy" ] && package_imports; then
    say "venv up to date ($VENV, pyproject.toml unchanged)"
else
    say "pip install -e '.[test]' into $VENV"
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
    package_imports || die "regdeploy does not import from $VENV after pip install"
    echo "$want" >"$STAMP"
fi

# --- 4. the default registry image ----------------------------------------------------------------------
image_label() { docker image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

if docker image inspect "$DEFAULT_IMAGE" >/dev/null 2>&1; then
    built_from=$(image_label "$DEFAULT_IMAGE" io.regdeploy.built-from)
    if [ -n "$built_from" ]; then
        say "image $DEFAULT_IMAGE present (built from $built_from, distribution $(image_label "$DEFAULT_IMAGE" org.opencontainers.image.version))"
    else
        say "image $DEFAULT_IMAGE present"
    fi
else
    pulled=0
    if [ "${REGDEPLOY_SETUP_NO_PULL:-0}" != 1 ]; then
        say "image $DEFAULT_IMAGE absent: trying docker pull $DEFAULT_IMAGE"
        if timeout 120 docker pull -q "$DEFAULT_IMAGE" >/dev/null 2>&1; then
            pulled=1
            say "pulled $DEFAULT_IMAGE"
        fi
    fi
    if [ "$pulled" -eq 0 ]; then
        [ -x "$REGISTRY_BINARY" ] || die "cannot pull $DEFAULT_IMAGE and $REGISTRY_BINARY is missing"
        say "cannot pull $DEFAULT_IMAGE (air-gapped?): building it from $REGISTRY_BINARY instead"
        "$VENV/bin/regdeploy" image build --binary "$REGISTRY_BINARY" --tag "$DEFAULT_IMAGE"
        version=$(image_label "$DEFAULT_IMAGE" org.opencontainers.image.version)
        say "NOTE: $DEFAULT_IMAGE on this engine is Debian's distribution $version ($REGISTRY_BINARY)" \
            "packaged as $DEFAULT_IMAGE for offline use, not the Docker Hub image"
    fi
fi

say "done"
