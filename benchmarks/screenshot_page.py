"""Look at an HTML page (the demo's comparison page, a run's report.html) as a real browser draws it.

    apt-get install -y chromium            # Debian's Chromium; any chromium / google-chrome on PATH works
    .venv/bin/python benchmarks/screenshot_page.py demo_out/index.html --out /tmp/index.png [--width 1400 --height 2000]

Runs headless Chromium on the file (`--headless --no-sandbox --screenshot`; the sandbox needs a
non-root user), writes the PNG and checks that the browser really drew something: the PNG exists,
has the asked size and is not one flat colour. Then open the PNG and look at it: the metrics
table, and per image the GT box and each method's map and box side by side. Exit 1 with one line
when Chromium is missing or the screenshot is blank. tests/test_compare.py uses `screenshot` on a
tiny page (skipped without Chromium).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The first browser of BROWSERS on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 2000, timeout: float = 120) -> Path:
    """Screenshot `page` (a local HTML file) into `png` with headless Chromium; RuntimeError when the
    browser is missing, fails, or draws a blank page."""
    import numpy as np
    from PIL import Image

    browser = find_chromium()
    if browser is None:
        raise RuntimeError(f"no browser found (tried {', '.join(BROWSERS)}); apt-get install -y chromium")
    page, png = Path(page).resolve(), Path(png).resolve()
    if not page.is_file():
        raise RuntimeError(f"{page} does not exist")
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:  # a throwaway profile: no state left behind
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}",
               page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{browser} wrote no screenshot (exit {proc.returncode}): {tail[0]}")
    pixels = np.asarray(Image.open(png).convert("RGB"))
    if pixels.shape[:2] != (height, width):
        raise RuntimeError(f"{png}: {pixels.shape[1]} x {pixels.shape[0]}, expected {width} x {height}")
    if (pixels == pixels[0, 0]).all():
        raise RuntimeError(f"{png}: the browser drew a blank page")
    return png


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("page", type=Path)
    p.add_argument("--out", type=Path, default=Path("/tmp/page.png"))
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=2000)
    ns = p.parse_args()
    try:
        png = screenshot(ns.page, ns.out, ns.width, ns.height)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"screenshot_page: {e}", file=sys.stderr)
        return 1
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
