# Helpers for the CLI tests: each test script is run by ctest as `bash script CTM_BINARY SOURCE_DIR`.
set -u
CTM="$1"
SRC="$2"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
# expect_exit CODE CMD...: runs CMD, captures stdout+stderr into $OUTPUT, checks the exit code.
expect_exit() {
  local want=$1; shift
  OUTPUT=$("$@" 2>&1); local got=$?
  if [ "$got" != "$want" ]; then echo "FAIL: '$*' exited $got, want $want. Output:"; echo "$OUTPUT"; fails=$((fails+1)); fi
}
expect_output() {  # expect_output REGEX
  if ! grep -Eq -- "$1" <<<"$OUTPUT"; then echo "FAIL: output does not match /$1/:"; echo "$OUTPUT"; fails=$((fails+1)); fi
}
expect_lines() {  # expect_lines N: output has exactly N lines
  local n; n=$(printf '%s\n' "$OUTPUT" | wc -l)
  if [ "$n" != "$1" ]; then echo "FAIL: want $1 line(s), got $n:"; echo "$OUTPUT"; fails=$((fails+1)); fi
}
finish() { if [ $fails -eq 0 ]; then echo "ok"; exit 0; else echo "$fails failure(s)"; exit 1; fi; }
