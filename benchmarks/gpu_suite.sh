#!/usr/bin/env bash
# GPU readiness suite, in one call: bash benchmarks/gpu_suite.sh [--smoke] [--out DIR] [--device auto|cpu|cuda]
#                                                                 [--only TASK ...]
#
# Runs every task of benchmarks/gpu_suite.py (TASKS) under its own time limit and writes DIR/summary.json and
# DIR/summary.md (default DIR: runs/gpu, or runs/gpu-smoke with --smoke); per-task logs go to DIR/logs/. Installs
# nothing: it uses .venv/bin/python when present, else python3, with the project as it is installed there.
#   --smoke        tiny sizes, on CPU unless --device says otherwise (a few minutes; the numbers mean nothing)
#   --only TASK    run only the named task(s) (repeatable), e.g. to rerun one after raising its limit; the summary
#                  is rebuilt from every result in DIR
#   GPU_SUITE_LIMIT_<TASK>=SECONDS   overrides a task's time limit (e.g. GPU_SUITE_LIMIT_STEP_COMPILED=400)
#   GPU_SUITE_THREADS=N              torch CPU threads of every task (default: torch's own)
# Exit status: 0 when no item errored (a missed goal is not an error), 1 when one did, 2 on a usage error.
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE=()
OUT=""
DEVICE=()
ONLY=()
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=(--smoke); shift ;;
        --out) [ $# -ge 2 ] || { echo "error: --out needs a directory" >&2; exit 2; }; OUT="$2"; shift 2 ;;
        --out=*) OUT="${1#--out=}"; shift ;;
        --device) [ $# -ge 2 ] || { echo "error: --device needs auto, cpu or cuda" >&2; exit 2; }
                  DEVICE=(--device "$2"); shift 2 ;;
        --only) [ $# -ge 2 ] || { echo "error: --only needs a task name" >&2; exit 2; }; ONLY+=("$2"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$OUT" ]; then
    if [ ${#SMOKE[@]} -gt 0 ]; then OUT=runs/gpu-smoke; else OUT=runs/gpu; fi
fi
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$OUT/items" "$OUT/logs" || exit 2

COMMAND="bash benchmarks/gpu_suite.sh${SMOKE:+ ${SMOKE[*]}}${DEVICE:+ ${DEVICE[*]}} --out $OUT"
suite() { "$PY" -m benchmarks.gpu_suite "$@" "${SMOKE[@]}" "${DEVICE[@]}" --out "$OUT"; }
if command -v timeout >/dev/null 2>&1; then
    limited() { local seconds="$1"; shift; timeout --kill-after=15 "$seconds" "$@"; }
else
    echo "note: no 'timeout' command; the tasks run without time limits" >&2
    limited() { shift; "$@"; }
fi

TASK_LIST="$(suite list)" || { echo "error: $PY cannot import benchmarks.gpu_suite (is the project installed?)" >&2
                              exit 2; }
if [ ${#ONLY[@]} -gt 0 ]; then
    for name in "${ONLY[@]}"; do
        grep -q "^$name " <<<"$TASK_LIST" || { echo "error: no task $name; tasks: $(cut -d' ' -f1 <<<"$TASK_LIST" \
            | tr '\n' ' ')" >&2; exit 2; }
    done
fi

limited 120 "$PY" -m benchmarks.gpu_suite env "${SMOKE[@]}" "${DEVICE[@]}" --out "$OUT" >"$OUT/logs/env.log" 2>&1 \
    || echo "warning: the environment probe failed; see $OUT/logs/env.log" >&2
started=$SECONDS
while read -r name limit; do
    if [ ${#ONLY[@]} -gt 0 ] && ! printf '%s\n' "${ONLY[@]}" | grep -qx "$name"; then continue; fi
    rm -f "$OUT/items/$name.json" "$OUT/items/$name.rc"
    t0=$SECONDS
    limited "$limit" "$PY" -m benchmarks.gpu_suite task "$name" "${SMOKE[@]}" "${DEVICE[@]}" --out "$OUT" \
        >"$OUT/logs/$name.log" 2>&1
    rc=$?
    echo "$rc $limit" >"$OUT/items/$name.rc"
    echo "[gpu_suite] $name: exit $rc in $((SECONDS - t0)) s (limit $limit s)"
    suite summarize --command "$COMMAND" >/dev/null  # a partial summary after every task
done <<<"$TASK_LIST"

suite summarize --command "$COMMAND"
status=$?
cat "$OUT/summary.md"
echo "[gpu_suite] $((SECONDS - started)) s in all; summary in $OUT/summary.json and $OUT/summary.md; exit $status"
exit $status
