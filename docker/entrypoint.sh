#!/usr/bin/env bash
# Container entrypoint: run Coral's CLI with a mounted YAML configuration.
#
#   serve (default)   coral-runtime web serve -c "$CORAL_CONFIG_FILE" --host "$CORAL_HOST" --port "$CORAL_PORT"
#                     plus one --set per ';'-separated item of $CORAL_SET, plus any further arguments
#   healthcheck       exit 0 when GET /healthz on the local port answers 200 (used by HEALTHCHECK)
#   <coral command>   run, config, doctor, init, plugins, models, web, docs: passed to coral-runtime
#   anything else     executed as is (e.g. bash)
#
# Settings can also come from CORAL_* variables (CORAL_SERVICES__AUTH__API_KEY_HASHES='["<sha256>"]').
set -euo pipefail

config_file="${CORAL_CONFIG_FILE:-/app/config/runtime.yaml}"
host="${CORAL_HOST:-0.0.0.0}"
port="${CORAL_PORT:-9100}"
coral_runtime="${CORAL_RUNTIME_BIN:-coral-runtime}"
python="${CORAL_PYTHON_BIN:-python3}"

die() {
  echo "coral-entrypoint: $*" >&2
  exit 2
}

serve() {
  [[ -f "$config_file" ]] || die "config file $config_file not found: mount one (-v ./runtime.yaml:$config_file:ro) or set CORAL_CONFIG_FILE"
  if ! [[ "$port" =~ ^[0-9]+$ ]] || (( port < 1 || port > 65535 )); then
    die "CORAL_PORT=$port is not a port number (1-65535)"
  fi
  local args=(web serve -c "$config_file" --host "$host" --port "$port")
  if [[ -n "${CORAL_SET:-}" ]]; then
    local items item
    IFS=';' read -r -a items <<< "$CORAL_SET"
    for item in "${items[@]}"; do
      item="${item#"${item%%[![:space:]]*}"}"   # trim leading blanks
      item="${item%"${item##*[![:space:]]}"}"   # trim trailing blanks
      [[ -z "$item" ]] && continue
      [[ "$item" == *=* ]] || die "CORAL_SET item '$item' is not KEY=VALUE"
      args+=(--set "$item")
    done
  fi
  exec "$coral_runtime" "${args[@]}" "$@"
}

healthcheck() {
  exec "$python" -c '
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:
    print(f"healthcheck: {exc}", file=sys.stderr)
    sys.exit(1)
' "$port"
}

command="${1:-serve}"
[[ $# -gt 0 ]] && shift
case "$command" in
  serve) serve "$@" ;;
  healthcheck) healthcheck ;;
  coral-runtime) exec "$coral_runtime" "$@" ;;
  run | config | doctor | init | plugins | models | web | docs) exec "$coral_runtime" "$command" "$@" ;;
  -*) serve "$command" "$@" ;;
  *) exec "$command" "$@" ;;
esac
