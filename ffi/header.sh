# Sourced by ffi/*/build*.sh: the cbindgen header of one C ABI crate, regenerated or checked for drift.
#
#   ffi_header_mode NAME CRATE_DIR CRATE HEADER SCRIPT "$@"
# NAME prefixes the messages, CRATE_DIR holds cbindgen.toml, CRATE is the package, HEADER the committed header,
# SCRIPT the command that regenerates it. With `--header` or `--check-header` as first argument it does that and
# exits; otherwise it returns and the caller builds.
ffi_header_mode() {
  local name="$1" dir="$2" crate="$3" header="$4" script="$5"
  shift 5
  gen_header() {
    command -v cbindgen >/dev/null 2>&1 || { echo "$name: cbindgen missing: cargo install cbindgen --locked" >&2; exit 1; }
    (cd "$dir" && cbindgen --quiet --config cbindgen.toml --crate "$crate" --output "$1" .)
  }
  case "${1:-}" in
    --header) gen_header "$header"; echo "$name: wrote $header"; exit 0 ;;
    --check-header)
      local tmp
      tmp="$(mktemp)"
      gen_header "$tmp"
      if ! diff -u "$header" "$tmp"; then
        rm -f "$tmp"
        echo "$name: FAILED: ${header##*/} is stale: bash $script --header" >&2
        exit 1
      fi
      rm -f "$tmp"
      echo "$name: header up to date"; exit 0 ;;
  esac
}
