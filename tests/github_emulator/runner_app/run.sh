#!/usr/bin/env bash
# Stand-in for the GitHub Actions runner's run.sh (test infrastructure of github-runner).
#   ./run.sh                       run with the configuration config.sh wrote
#   ./run.sh --jitconfig BLOB      run with a just-in-time configuration
# The listener runs as a child; SIGTERM/SIGINT are forwarded to it, and run.sh exits with its
# exit code.
RUNNER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

"$RUNNER_ROOT/bin/Runner.Listener" run "$@" &
listener=$!
trap 'kill -TERM "$listener" 2>/dev/null' TERM INT
wait "$listener"
status=$?
# A trapped signal interrupts `wait`; wait again for the listener's own exit code.
while kill -0 "$listener" 2>/dev/null; do
    wait "$listener"
    status=$?
done
exit "$status"
