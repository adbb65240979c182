#!/usr/bin/env bash
# Installs what the test suite needs when it is absent, then runs it.
#
#   bash scripts/test.sh [pytest args]   the whole suite on this machine's python3
#   bash scripts/test.sh --tox [envs]    the suite on every supported Python/Django pair
#
# Needs: Debian/Ubuntu (apt) for the system packages when they are missing; run as root
# or with sudo for that step. Uses PostgreSQL at 127.0.0.1:5432 when it accepts the
# postgres user without a password, otherwise starts a throwaway cluster on a free port;
# the same for MariaDB at 127.0.0.1:3306 and its root user. The suite then requires both.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { printf '[prism-test] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- 1. system packages ------------------------------------------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server redis-tools)
[ -n "$pg_bin" ] || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
# mysqlclient (the `mysql` extra) builds against these.
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v mariadb_config >/dev/null 2>&1 || missing+=(libmariadb-dev)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# --- 2. PostgreSQL ------------------------------------------------------------------
pg_dir=""
my_dir=""
cleanup() {
    if [ -n "$pg_dir" ]; then
        as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
    if [ -n "$my_dir" ]; then
        if [ -f "$my_dir/pid" ]; then
            pid=$(cat "$my_dir/pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -rf "$my_dir"
    fi
}
trap cleanup EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

port_answers() {  # host port
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
PY
}
if [ -z "${PRISM_TEST_PG_PORT:-}" ]; then
    if port_answers 127.0.0.1 5432 && command -v psql >/dev/null 2>&1 \
        && psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -w -Atc 'select 1' >/dev/null 2>&1; then
        export PRISM_TEST_PG_PORT=5432
    else
        pg_dir=$(mktemp -d /tmp/prism-pg.XXXXXX)
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
        say "starting a throwaway PostgreSQL on 127.0.0.1:$port"
        as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust >/dev/null
        as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -o \
            "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir -c fsync=off -c max_connections=200" \
            start >/dev/null
        export PRISM_TEST_PG_PORT=$port
    fi
fi
export PRISM_TEST_PG_HOST=127.0.0.1

# --- 2b. MariaDB -----------------------------------------------------------------------
# The throwaway server gets Debian's packaged defaults (--no-defaults would leave latin1),
# utf8mb4_general_ci included: the orm store must be exact whatever the server's collation.
mariadb_accepts_root() {  # port
    mariadb -h 127.0.0.1 -P "$1" -u root --connect-timeout=2 -e 'select 1' >/dev/null 2>&1
}
start_throwaway_mariadb() {  # sets my_dir and exports PRISM_TEST_MYSQL_PORT
    my_dir=$(mktemp -d /tmp/prism-mariadb.XXXXXX)
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    say "starting a throwaway MariaDB on 127.0.0.1:$port"
    # mariadbd will not run as root: the data belong to the mysql user when we are root.
    local user
    user=$(id -un)
    [ "$(id -u)" = 0 ] && user=mysql && chown mysql "$my_dir"
    mariadb-install-db --no-defaults --user="$user" --datadir="$my_dir/data" \
        --auth-root-authentication-method=normal --skip-test-db >"$my_dir/install.log" 2>&1
    /usr/sbin/mariadbd --no-defaults --user="$user" --datadir="$my_dir/data" \
        --socket="$my_dir/sock" --pid-file="$my_dir/server.pid" --log-error="$my_dir/log" \
        --port="$port" --bind-address=127.0.0.1 --skip-name-resolve --skip-log-bin \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
        --innodb-buffer-pool-size=128M --innodb-flush-log-at-trx-commit=0 \
        --max-connections=200 >/dev/null 2>&1 &
    echo $! >"$my_dir/pid"
    local up=""
    for _ in $(seq 300); do
        mariadb --socket="$my_dir/sock" -u root -e 'select 1' >/dev/null 2>&1 && up=1 && break
        sleep 0.1
    done
    if [ -z "$up" ]; then
        say "MariaDB did not start within 30 s:"
        tail -n 20 "$my_dir/install.log" "$my_dir/log" >&2 || true
        exit 1
    fi
    # Root over TCP from 127.0.0.1, without a password, like the usual test server.
    mariadb --socket="$my_dir/sock" -u root -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
        GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
    export PRISM_TEST_MYSQL_PORT=$port
}
if [ -z "${PRISM_TEST_MYSQL_PORT:-}" ]; then
    if port_answers 127.0.0.1 3306 && mariadb_accepts_root 3306; then
        export PRISM_TEST_MYSQL_PORT=3306
    else
        start_throwaway_mariadb
    fi
fi
export PRISM_TEST_MYSQL_HOST=${PRISM_TEST_MYSQL_HOST:-127.0.0.1}
# The MariaDB tests skip when the server does not answer; here it must.
export PRISM_TEST_MYSQL_REQUIRED=1

# --- 3. Python environment ----------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    python3 -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    say "installing prism-storage with its test and lint extras"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test,lint]' tox
    touch "$stamp"
fi

# --- 4. run ---------------------------------------------------------------------------
export PYTHONDONTWRITEBYTECODE=1
if [ "${1:-}" = "--tox" ]; then
    shift
    # pyenv-installed interpreters are visible to tox without being activated.
    for dir in "$HOME"/.pyenv/versions/3.1[123]*/bin; do
        [ -d "$dir" ] && PATH="$PATH:$dir"
    done
    export PATH
    envs=${1:-py311-django52,py312-django61,py313-django61}
    .venv/bin/tox -e "$envs" -- -q -p no:cacheprovider
else
    .venv/bin/python -m pytest -W error::ResourceWarning -p no:cacheprovider "$@"
fi
