#!/bin/sh
# The files `trustsync run` needs at run time, built from this checkout into DIR: the compiled
# code, production dependencies only, and the SQL migrations it reads. The Dockerfile runs it in
# its build stage; CI runs it too (test/integration/deploy.test.ts), since Docker is not there.
set -eu
out="${1:?usage: deploy/runner-files.sh DIR}"
npm ci --no-audit --no-fund --ignore-scripts
npm run build
npm prune --omit=dev --no-audit --no-fund --ignore-scripts
mkdir -p "$out/src/sink/postgres" "$out/src/sink/mariadb"
cp -R package.json bin dist node_modules connectors schemas "$out/"
cp -R src/sink/postgres/migrations "$out/src/sink/postgres/"
cp -R src/sink/mariadb/migrations "$out/src/sink/mariadb/"
