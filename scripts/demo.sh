#!/usr/bin/env bash
# Installs and runs the demo agent platform on embedded parts (SQLite, files, embedded
# vector store): migrations, example records, an admin user (admin / admin), then uvicorn
# (an ASGI server: the API's views are async) on http://127.0.0.1:8000/ , serving the
# admin's static files itself while DEBUG is on. PRISM_DEMO_ADDR=host:port (or a port) changes the address.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -m venv --help >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; else
        sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv; fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[demo]'
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py seed_demo
.venv/bin/python manage.py check
addr="${PRISM_DEMO_ADDR:-127.0.0.1:8000}"
case "$addr" in *:*) host="${addr%:*}" port="${addr##*:}" ;; *) host=127.0.0.1 port="$addr" ;; esac
echo "Serving the demo on http://${host}:${port}/ (admin / admin); Ctrl-C stops it."
# Django answers no ASGI lifespan events: --lifespan off spares uvicorn asking.
exec .venv/bin/python -m uvicorn demo_project.asgi:application \
    --host "$host" --port "$port" --lifespan off
