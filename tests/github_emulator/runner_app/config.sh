#!/usr/bin/env bash
# Stand-in for the GitHub Actions runner's config.sh (test infrastructure of github-runner).
#   ./config.sh --url URL --token TOKEN [--name N] [--labels a,b] [--ephemeral] [--unattended]
#               [--runnergroup G] [--work DIR] [--replace] [--disableupdate] [--no-default-labels]
#   ./config.sh remove --token REMOVE_TOKEN
set -u
RUNNER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Like the real runner: refuse root unless explicitly allowed.
if [ "$(id -u)" -eq 0 ] && [ -z "${RUNNER_ALLOW_RUNASROOT:-}" ]; then
    echo "Must not run with sudo" >&2
    exit 1
fi

if [ "${1:-}" = "remove" ]; then
    shift
    exec "$RUNNER_ROOT/bin/Runner.Listener" remove "$@"
fi
exec "$RUNNER_ROOT/bin/Runner.Listener" configure "$@"
