#!/usr/bin/env bash
# Regenerates docs/console.png, the README's picture of the web console: runs the browser
# test (which drives Debian's Chromium against a real `easel up` and saves screenshots under
# target/tmp/console/), then shrinks the dead-letter view with pngquant (Debian's package).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test -p easel --test console the_console_shows_and_controls_jobs_in_a_real_browser
command -v pngquant >/dev/null || { echo "install pngquant (apt-get install pngquant)" >&2; exit 1; }
pngquant --force --quality 60-85 --output docs/console.png target/tmp/console/dead-letter.png
ls -l docs/console.png
