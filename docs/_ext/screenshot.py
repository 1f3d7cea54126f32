"""A picture of the top of a run's ``report.html`` for the documentation.

``make docs-results`` runs this after the snapshot: the docs show what a
reviewer sees first (what was run, every check, the steps); the report
itself is linked beside it. It needs ``wkhtmltoimage`` (Debian/Ubuntu:
``apt-get install wkhtmltopdf``), a renderer without JavaScript or network,
which the report needs neither of; without it there is no picture, and
``make docs`` fails on the page that shows it until one is made.

The picture names its report: the PNG's ``fkhw-report-sha256`` text entry
is the SHA-256 of the ``report.html`` it was made from, so a test can tell a
picture of an older report (a snapshot refreshed without its picture).

    python docs/_ext/screenshot.py docs/results/econt-bol/report.html docs/results/econt-bol/report.png
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH_PX = 1100  # the page as a laptop browser shows it
HEIGHT_PX = 1500  # the top of it: run, checks, steps
SCALE = 0.7  # of the saved picture
REPORT_KEY = "fkhw-report-sha256"  # the PNG text entry that names the report the picture shows


def report_digest(report: Path) -> str:
    return hashlib.sha256(report.read_bytes()).hexdigest()


def screenshot(report: Path, png: Path) -> bool:
    exe = shutil.which("wkhtmltoimage")
    if exe is None:
        print(f"screenshot: wkhtmltoimage not found (apt-get install wkhtmltopdf): no {png}", file=sys.stderr)
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as tmp:
        jpg = Path(tmp) / "top.jpg"
        subprocess.run([exe, "--quiet", "--disable-javascript", "--width", str(WIDTH_PX), "--crop-h",
                        str(HEIGHT_PX), "--format", "jpg", "--quality", "85", str(report), str(jpg)],
                       check=True, timeout=300, capture_output=True)
        image = mpimg.imread(jpg)
    h, w = image.shape[:2]
    fig = plt.figure(figsize=(w * SCALE / 100, h * SCALE / 100), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(image)
    ax.axis("off")
    fig.savefig(png, dpi=100, metadata={REPORT_KEY: report_digest(report)})
    plt.close(fig)
    return True


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    sys.exit(0 if screenshot(Path(sys.argv[1]), Path(sys.argv[2])) else 1)
