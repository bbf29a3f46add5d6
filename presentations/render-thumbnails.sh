#!/usr/bin/env bash
# render-thumbnails.sh — regenerate slide thumbnails for edetail authoring folders.
#
# Usage:
#   presentations/render-thumbnails.sh                 # every folder under presentations/ with an edetail.json
#   presentations/render-thumbnails.sh DECK_DIR ...    # only these authoring folders
#
# For every slide in DECK_DIR/edetail.json it opens the slide's `entry` in headless Chromium at
# 1024x768 (the slide canvas), with `?thumb` appended so the deck's shared JS switches animations
# to their final state, takes a screenshot, and writes a 256x192 PNG to the slide's `thumbnail`
# path. /_edetail/edetail.js does not exist on file://; the decks' shared JS falls back to a
# console-logging stand-in, so slides render the same as in the runtime.
#
# Needs: chromium (or chromium-browser / google-chrome), ImageMagick `convert`, python3.
#   Debian/Ubuntu: apt-get install -y chromium imagemagick
# Environment: CHROMIUM=/path/to/browser to pick a browser; THUMB_SIZE=256x192 to change the size.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
size="${THUMB_SIZE:-256x192}"

browser="${CHROMIUM:-}"
if [[ -z "$browser" ]]; then
  for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then browser="$b"; break; fi
  done
fi
[[ -n "$browser" ]] || { echo "error: no Chromium found (apt-get install -y chromium, or set CHROMIUM=)" >&2; exit 1; }
command -v convert >/dev/null 2>&1 || { echo "error: ImageMagick 'convert' not found (apt-get install -y imagemagick)" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "error: python3 not found" >&2; exit 1; }

decks=("$@")
if [[ ${#decks[@]} -eq 0 ]]; then
  for m in "$here"/*/edetail.json; do decks+=("$(dirname "$m")"); done
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for deck in "${decks[@]}"; do
  deck="$(cd "$deck" && pwd)"
  [[ -f "$deck/edetail.json" ]] || { echo "skip: $deck has no edetail.json" >&2; continue; }
  echo "== $deck"
  # one "entry<TAB>thumbnail" line per slide that declares a thumbnail
  python3 - "$deck/edetail.json" > "$work/list" <<'PY'
import json, sys
m = json.load(open(sys.argv[1], encoding="utf-8"))
for s in m.get("slides", []):
    if s.get("thumbnail"):
        print(s["entry"] + "\t" + s["thumbnail"])
PY
  while IFS=$'\t' read -r entry thumb; do
    shot="$work/shot.png"
    rm -f "$shot"
    profile="$(mktemp -d "$work/profile.XXXX")"
    # --virtual-time-budget lets scripts and (already shortened) animations settle.
    timeout 90 "$browser" --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
      --mute-audio --user-data-dir="$profile" --window-size=1024,768 --virtual-time-budget=4000 \
      --screenshot="$shot" "file://$deck/$entry?thumb" >/dev/null 2>&1 || true
    rm -rf "$profile"
    if [[ ! -s "$shot" ]]; then echo "  FAILED  $entry" >&2; continue; fi
    mkdir -p "$(dirname "$deck/$thumb")"
    convert "$shot" -crop 1024x768+0+0 +repage -resize "$size!" -strip \
      -define png:compression-level=9 "PNG24:$deck/$thumb"
    echo "  ok      $thumb"
  done < "$work/list"
done
