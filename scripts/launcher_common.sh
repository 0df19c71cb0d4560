# shellcheck shell=bash
# Shared by the launchers: option parsing, exports from Python, and the failure line.
# Sourced, not run. Everything beyond this belongs in the sft_vs_rlvr package.

die() { echo "error: $*" >&2; exit 2; }

# Run a Python helper that prints `export NAME=value` lines and apply them; stop if it fails
# (a plain eval "$(...)" would swallow the helper's exit status).
load_exports() {
  local exports
  exports="$("$@")" || exit $?
  eval "$exports"
}

# Options common to the training launchers: --help, --fresh, --dry-run, --plan.
FRESH="${FRESH:-}"
export DRY_RUN="" PLAN=""  # read by the launchers that source this file
parse_launcher_args() {
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

# Print a command the way --dry-run promises: one line, shell-quoted, ready to paste.
print_command() { printf '%q ' "$@" | sed 's/ $//'; echo; }
