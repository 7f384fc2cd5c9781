"""Write the glyphs benchmark as a user's own image data: a class-folder tree ``ROOT/<class>/<font>.png``
(one folder per code point, ``U+0041``; grey PNGs as rendered), run by hand:
``.venv/bin/python benchmarks/glyphs_to_folder.py runs/glyphs300 --max-classes 300 --image-size 64``.

The classes are the first ``--max-classes`` of the glyphs permutation (``tcdml.data.glyphs``, train and test
classes together). The tree has no split: ``tcdml init images --data ROOT`` then holds half the classes out
(sorted by name) as the test classes, the open-world protocol a user's folder gets (docs/study.md, "The
images template against its start").
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    from PIL import Image

    from tcdml.data.glyphs import load_glyphs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder to write (must not exist)")
    parser.add_argument("--max-classes", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    data = load_glyphs("all", image_size=args.image_size, max_classes=args.max_classes)
    args.root.mkdir(parents=True)  # never writes into an existing tree
    for index in range(len(data)):
        # ids are glyphs/<code point>/<font name>
        _, code, font = str(data.paths[index]).split("/")
        folder = args.root / code
        folder.mkdir(exist_ok=True)
        Image.fromarray(data.images[index]).save(folder / f"{font}.png")
    print(f"{args.root}: {len(data)} images, {data.num_classes} classes at {args.image_size} px")


if __name__ == "__main__":
    main()
