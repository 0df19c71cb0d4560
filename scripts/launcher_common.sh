# shellcheck shell=bash
# Shared by the launchers and scripts/tiny/: option parsing, exports from Python, printing or running the
# stage's command, and the failure line. Sourced, not run. Everything beyond this belongs in the
# sft_vs_rlvr package.

die() { echo "error: $*" >&2; exit 2; }

# Run a Python helper that prints `export NAME=value` lines and apply them; stop if it fails
# (a plain eval "$(...)" would swallow the helper's exit status).
load_exports() {
  local exports
  exports="$("$@")" || exit $?
  eval "$exports"
}

# Options common to the training launchers: --help, --fresh, --dry-run, --plan. DRY_RUN and PLAN are
# exported so that the scripts a launcher hands over to (scripts/tiny/) see them.
FRESH="${FRESH:-}"
parse_launcher_args() {
  export DRY_RUN="" PLAN=""
  while (($#)); do
    case "$1" in
      -h|--help) usage; exit 0 ;;
      --fresh) FRESH=1 ;;
      --dry-run) DRY_RUN=1 ;;
      --plan) PLAN=1 ;;
      *) die "unknown option '$1'; see $0 --help" ;;
    esac
    shift
  done
  case "${FRESH}" in ""|0) FRESH="" ;; *) FRESH=1 ;; esac
}

# The launchers run from the repository root with the project's Python on PATH.
check_python() {
  python -c 'import sft_vs_rlvr' 2>/dev/null \
    || die "python cannot import sft_vs_rlvr; run 'make setup' and 'source .venv/bin/activate' (or use make demo)"
}

# --dry-run: print the command one flag per line, shell-quoted (paste it into a shell), and stop. Nothing
# else goes to standard output, so the printed text is exactly the command.
show_command_if_dry_run() {
  [[ -n "${DRY_RUN:-}" ]] || return 0
  python -m sft_vs_rlvr.shell_command show -- "$@"
  exit 0
}

# Run the command as this stage: runs.py records manifest.json and command.sh, tees train.log, and marks
# the stage completed or failed.
run_stage() {
  exec python -m sft_vs_rlvr.runs run --run-dir "$RUN_DIR" -- "$@"
}
