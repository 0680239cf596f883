#!/usr/bin/env bash
# Set up a Debian 12 machine (fresh or not) for regdeploy development and CI. Run as root; idempotent:
# on a machine that is already set up it changes nothing and takes a couple of seconds.
#
#   1. apt packages: docker.io docker-registry skopeo podman openssh-server openssl curl ca-certificates iproute2
#      git debootstrap (builds the lab-host image the fleet tests use), (+ python3, python3-venv when needed);
#      `apt-get update` only when something is missing
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

packages=(docker.io docker-registry skopeo podman openssh-server openssl curl ca-certificates iproute2 git debootstrap)
command -v python3 >/dev/null 2>&1 || packages+=(python3)
missing=()
for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
else
    say "packages present (${packages[*]})"
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
