"""Build templates/plots.html: DVC's plots page with vega, vega-lite and vega-embed inlined, so that
`dvc plots show` (which .dvc/config points at this template) renders with no network.

    python scripts/build_plots_template.py DIR   # DIR: the unpacked npm tarballs, e.g. from
    # npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2  (the versions dvc-render's own page loads)

The three libraries are BSD-3-Clause (their licences are copied into the page, before each script).
"""

from __future__ import annotations

import sys
from pathlib import Path

LIBRARIES = ("vega-5.20.2/build/vega.min.js", "vega-lite-5.2.0/build/vega-lite.min.js",
             "vega-embed-6.18.2/build/vega-embed.min.js")
OUT = Path(__file__).resolve().parents[1] / "templates/plots.html"


def main(source: Path) -> None:
    scripts = []
    for relative in LIBRARIES:
        package = relative.split("/")[0]
        licence = (source / package / "LICENSE").read_text().strip().replace("-->", "")
        code = (source / relative).read_text().replace("</script", "<\\/script")
        scripts.append(f"<!-- {package}, {relative.split('/')[-1]}:\n{licence}\n-->\n<script>{code}</script>")
    page = f"""<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    <title>DVC plots: unsupervised-mnist</title>
    {{refresh_tag}}
{chr(10).join(scripts)}
    <style>
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(page)
    print(f"{OUT}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
