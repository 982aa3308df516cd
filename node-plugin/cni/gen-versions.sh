#!/bin/sh
# Writes the C header with the CNI versions the plugin supports, taken from types.ts (the one source).
set -eu
list=$(sed -n "s/^export const SUPPORTED_VERSIONS = \[\(.*\)\] as const;.*/\1/p" "$1" | tr -d " '")
[ -n "$list" ] || { echo "gen-versions: SUPPORTED_VERSIONS not found in $1" >&2; exit 1; }
json=$(printf '%s' "$list" | sed 's/\([^,]*\)/\\"\1\\"/g')
latest=${list##*,}
printf '/* Generated from types.ts by gen-versions.sh. */\n#define SUPPORTED_VERSIONS_JSON "[%s]"\n#define LATEST_VERSION "%s"\n' "$json" "$latest" > "$2"
