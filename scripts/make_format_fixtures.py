"""Writes tests/fixtures/formats/: one small file per image format or variant people have that the
Rust decoders treat specially. Every file is the same picture, tests/fixtures/photos/linzaer_imgs_2.jpg
(MIT) shrunk to 224x106, so a test can compare what emotrack decodes with the reference JPEG.

Needs Pillow >= 11.3 (AVIF) and pillow-heif (HEIC):
    python3 -m venv /var/tmp/fixture-venv && /var/tmp/fixture-venv/bin/pip install pillow pillow-heif
    /var/tmp/fixture-venv/bin/python scripts/make_format_fixtures.py
"""

from pathlib import Path

from PIL import Image
import pillow_heif

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests/fixtures/photos/linzaer_imgs_2.jpg"
OUT = ROOT / "tests/fixtures/formats"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rgb = Image.open(SOURCE).convert("RGB").resize((224, 106), Image.Resampling.LANCZOS)
    # The reference every other file is compared with (lossless).
    rgb.save(OUT / "reference.png")
    # Classic expression datasets (JAFFE) ship 8-bit palette TIFFs.
    rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(OUT / "palette.tif")
    # Print workflows: CMYK JPEG (Adobe APP14, inverted) and CMYK TIFF.
    cmyk = rgb.convert("CMYK")
    cmyk.save(OUT / "cmyk.jpg", quality=95)
    cmyk.save(OUT / "cmyk.tif", compression="tiff_adobe_deflate")
    # Formats the decoders do not read: iPhone photos (HEIC) and AVIF.
    pillow_heif.register_heif_opener()
    rgb.save(OUT / "iphone.heic", quality=80)
    rgb.save(OUT / "photo.avif", quality=80)
    for path in sorted(OUT.iterdir()):
        print(f"{path.name:16} {path.stat().st_size:7} bytes")


if __name__ == "__main__":
    main()
