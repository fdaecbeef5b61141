#!/usr/bin/env python3
"""Tiles historical photos and their colourisations into one JPEG for docs/MODELS.md.

    scripts/historical-grid.py OUT.jpg PHOTO_DIR NAME=COLOURISED_DIR [NAME=DIR ...] -- FILE [FILE ...]

Each row is one FILE: the original from PHOTO_DIR, then the same file name (as .png) from each
COLOURISED_DIR, every tile scaled to 220 pixels high. Needs Pillow (not needed by CI).
"""
import sys
from pathlib import Path

from PIL import Image, ImageDraw

HEIGHT = 220


def main() -> None:
    args = sys.argv[1:]
    split = args.index("--")
    out, photo_dir, columns, files = args[0], Path(args[1]), args[2:split], args[split + 1 :]
    columns = [c.split("=", 1) for c in columns]
    rows = []
    for f in files:
        tiles = [Image.open(photo_dir / f).convert("RGB")]
        for _, d in columns:
            tiles.append(Image.open(Path(d) / (Path(f).stem + ".png")).convert("RGB"))
        tiles = [t.resize((round(t.width * HEIGHT / t.height), HEIGHT), Image.LANCZOS) for t in tiles]
        rows.append(tiles)
    width = max(sum(t.width for t in r) + 4 * (len(r) - 1) for r in rows)
    label_h = 24
    grid = Image.new("RGB", (width, label_h + len(rows) * (HEIGHT + 4)), "white")
    draw = ImageDraw.Draw(grid)
    x = 0
    for i, name in enumerate(["input"] + [c[0] for c in columns]):
        draw.text((x + 6, 6), name, fill="black")
        x += rows[0][i].width + 4
    for j, r in enumerate(rows):
        x = 0
        for t in r:
            grid.paste(t, (x, label_h + j * (HEIGHT + 4)))
            x += t.width + 4
    grid.save(out, quality=85)


if __name__ == "__main__":
    main()
