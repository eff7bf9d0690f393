#!/usr/bin/env bash
# Stand-in for the GitHub Actions runner's run.sh (test infrastructure of github-runner).
#   ./run.sh                       run with the configuration config.sh wrote
#   ./run.sh --jitconfig BLOB      run with a just-in-time configuration
#
# It maps the listener's exit codes exactly as the real layout does (actions/runner
# src/Misc/layoutroot/run.sh and run-helper.sh.template):
#   0 -> exit 0;  1 (terminated error) -> exit 0;  5 (session conflict) -> exit 0;
#   2 (retryable) -> start the listener again after 5 s;
#   3, 4 (self-update) -> wait up to 30 s for update.finished, then start it again;
#   7 (version deprecated, only with ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1) and
#   any other code -> exit 0.
# The real run.sh ends with `exit 0` whatever run-helper.sh returned (unless
# RUNNER_MANUALLY_TRAP_SIG is set, when it passes run-helper's code through). So a failure is
# never visible in run.sh's exit code: whoever needs the real outcome runs bin/Runner.Listener.
# SIGTERM/SIGINT are forwarded to the listener (the real one relies on the process group).
RUNNER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

listener=""
trap '[ -n "$listener" ] && kill -TERM "$listener" 2>/dev/null' TERM INT

run_listener() {
    "$RUNNER_ROOT/bin/Runner.Listener" run "$@" &
    listener=$!
    wait "$listener"
    code=$?
    # A trapped signal interrupts `wait`; wait again for the listener's own exit code.
    while kill -0 "$listener" 2>/dev/null; do
        wait "$listener"
        code=$?
    done
    listener=""
    return "$code"
}

# One round of run-helper.sh: returns 2 to be started again, anything else to stop.
helper() {
    if [ "$(id -u)" -eq 0 ] && [ -z "${RUNNER_ALLOW_RUNASROOT:-}" ]; then
        echo "Must not run interactively with sudo"
        return 1
    fi
    run_listener "$@"
    local code=$?
    case "$code" in
        0) echo "Runner listener exit with 0 return code, stop the service, no retry needed."; return 0 ;;
        1) echo "Runner listener exit with terminated error, stop the service, no retry needed."; return 0 ;;
        2) echo "Runner listener exit with retryable error, re-launch runner in 5 seconds."
           sleep 5; return 2 ;;
        3|4)
            echo "Runner listener exit because of updating, re-launch runner after successful update"
            for _ in $(seq 0 30); do
                if [ -f "$RUNNER_ROOT/update.finished" ]; then
                    echo "Update finished successfully."
                    rm -f "$RUNNER_ROOT/update.finished"
                    break
                fi
                sleep 1
            done
            return 2 ;;
        5) echo "Runner listener exit with Session Conflict error, stop the service, no retry needed."; return 0 ;;
        7)
            if [ "${ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE:-}" = "1" ]; then
                echo "Runner listener exit with deprecated version exit code: $code."
                return 7
            fi
            echo "Exiting with unknown error code: $code"; return 0 ;;
        *) echo "Exiting with unknown error code: $code"; return 0 ;;
    esac
}

while :; do
    helper "$@"
    status=$?
    if [ "$status" -eq 2 ]; then
        echo "Restarting runner..."
        continue
    fi
    echo "Exiting runner..."
    if [ -n "${RUNNER_MANUALLY_TRAP_SIG:-}" ]; then
        exit "$status"
    fi
    exit 0
done
