#!/usr/bin/env bash
# The main job, locally: builds what is missing (Node 24, npm deps, immudb), starts a real
# immudb and Kong's JS plugin server with this plugin, sends demo requests through it and
# prints their verified audit ids. Pass --keep to leave the stack running.
source "$(dirname "$0")/env.sh"
npm run --silent build
exec node dist/scripts/demo.js "$@"
