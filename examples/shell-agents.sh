#!/usr/bin/env bash
# Shell agents on Chorus: the coordination hub's scripts (register, send <channel> <message>, create-task <title>
# <desc> [priority] [requires_human]) are `chorus` one-liners now. Two AI agents join, talk, hand a task over,
# run it under a claim, wait for an answer, and look at who is there. Prints "all checks passed" only if every
# step worked.
#
#   examples/shell-agents.sh                 # starts its own relay
#   CHORUS_RELAY=http://127.0.0.1:8550 examples/shell-agents.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# chorus runs TypeScript directly, which needs Node 24: the repository's own node when it is installed.
if [ -x "$ROOT/node_modules/.bin/node" ]; then PATH="$ROOT/node_modules/.bin:$PATH"; fi
chorus() { node "$ROOT/packages/cli/src/main.ts" "$@"; }

FAILED=""
fail() {
  FAILED=1
  echo "FAIL $*"
  exit 1
}
# One field of the JSON on stdin (a dotted path; numbers index arrays), without needing jq.
field() {
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    let v = JSON.parse(s); for (const k of process.argv[1].split(".")) v = v?.[k];
    process.stdout.write(v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v)) })' "$1"
}

TMP="$(mktemp -d)"
RELAY_PID=""
WAIT_PID=""
cleanup() {
  local status=$?
  # set -e stopped at a failing step (its error is printed above it).
  if [ "$status" -ne 0 ] && [ -z "$FAILED" ]; then echo "FAIL a step exited $status"; fi
  if [ -n "$WAIT_PID" ]; then kill "$WAIT_PID" 2>/dev/null || true; fi
  if [ -n "$RELAY_PID" ]; then
    kill "$RELAY_PID" 2>/dev/null || true
    wait "$RELAY_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

if [ -z "${CHORUS_RELAY:-}" ]; then
  node "$ROOT/relay/src/main.ts" --port 0 --data "$TMP/data" --no-p2p --no-dashboard >"$TMP/relay.out" 2>"$TMP/relay.err" &
  RELAY_PID=$!
  # Its first stdout line is "chorus relay listening on URL"; wait for it (at most 30 s).
  for _ in $(seq 300); do
    if grep -q '^chorus relay listening on ' "$TMP/relay.out"; then break; fi
    kill -0 "$RELAY_PID" 2>/dev/null || { cat "$TMP/relay.err"; fail "the relay exited before listening"; }
    sleep 0.1
  done
  CHORUS_RELAY="$(sed -n 's/^chorus relay listening on //p' "$TMP/relay.out" | head -n 1)"
  [ -n "$CHORUS_RELAY" ] || fail "the relay did not say where it listens"
fi
# A space of its own, so a shared relay's other work does not get in the way.
export CHORUS_RELAY CHORUS_SPACE="${CHORUS_SPACE:-shell-agents-$$-$RANDOM}"
echo "relay $CHORUS_RELAY, space $CHORUS_SPACE"

# register: POST /entities/register {entity_id, entity_type, name, capabilities}
echo "--- register"
chorus join --id builder --name "Builder" --kind ai --capabilities python,tests
[ "$(chorus join --id reviewer --name "Reviewer" --kind ai --capabilities review --json | field kind)" = ai ] || fail "reviewer did not join as ai"

# send <channel> <message>, and a direct message
echo "--- send"
chorus send --id builder --channel technical "Builder online, taking build and test tasks"
chorus send --id builder --to reviewer "Ping me when something needs testing"

# create-task <title> <desc> [priority] [requires_human]
echo "--- create-task"
TASK="$(chorus tasks create --id reviewer "Run the test suite" --description "Before the 0.2 release" --priority high --json | field id)"
[ -n "$TASK" ] || fail "tasks create printed no id"
echo "reviewer created $TASK"
chorus tasks create --id reviewer "Approve the release budget" --description "Needs a person" --requires-human

echo "--- claim and work"
# The claim is kept (renewed) while the command runs, and the task completed when it exits 0.
OUT="$(chorus tasks claim "$TASK" --id builder --hold -- sh -c 'echo "working on $CHORUS_TASK_ID"')"
echo "$OUT"
[ "$OUT" = "working on $TASK" ] || fail "the held command did not see CHORUS_TASK_ID ($OUT)"
DONE_BY="$(chorus tasks list --id reviewer --status completed --json | field 0.completedBy)"
[ "$DONE_BY" = builder ] || fail "the task was not completed by builder (got '$DONE_BY')"
chorus tasks list --id reviewer

echo "--- inbox"
chorus inbox --id reviewer --ack
[ "$(chorus inbox --id reviewer --json | field messages.length)" = 0 ] || fail "acknowledged messages came back"

echo "--- wait for an answer"
chorus wait message --id reviewer --from builder --timeout 10s --json >"$TMP/wait.json" &
WAIT_PID=$!
chorus send --id builder --to reviewer "Test suite passed on $TASK"
wait "$WAIT_PID" || fail "reviewer's wait ended without the message (exit $?)"
WAIT_PID=""
[ "$(field message.content <"$TMP/wait.json")" = "Test suite passed on $TASK" ] || fail "the wait returned $(cat "$TMP/wait.json")"
echo "reviewer heard: $(field message.content <"$TMP/wait.json")"
chorus inbox --id reviewer --ack

echo "--- who and report"
chorus who --id reviewer
[ "$(chorus who --id reviewer --json | field length)" = 2 ] || fail "who does not list both agents"
chorus report --id reviewer

echo "all checks passed"
