"""Tests of raster loading, PNG encoding, image cells and safe manifest paths."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, PngImagePlugin
from testsupport import require_shared

from corpusforge.generators.imaging.io import (
    MAX_IMAGE_PIXELS,
    ImageError,
    LoadedImage,
    content_hash,
    encode_png,
    image_cell,
    load_image,
    safe_join,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_declaring(width: int, height: int) -> bytes:
    """Return a tiny PNG whose header declares width x height 8-bit gray pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def png_chunk_types(data: bytes) -> list[bytes]:
    """Return the chunk types of a PNG file in order."""
    assert data.startswith(PNG_SIGNATURE)
    kinds = []
    offset = len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kinds.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return kinds


@pytest.fixture(scope="module")
def vqa_images() -> Path:
    return require_shared("vqa_rad", "images")


@pytest.fixture(scope="module")
def cxr_dir() -> Path:
    return require_shared("nih_cxr14_longitudinal")


@pytest.fixture
def small_jpeg_bytes(vqa_images: Path) -> bytes:
    """A real radiograph, downscaled to keep the tests fast, as JPEG bytes."""
    with Image.open(vqa_images / "synpic100132.jpg") as source:
        image = source.convert("RGB").resize((232, 138))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# Real files


def test_vqa_rad_jpegs_all_load(vqa_images):
    paths = sorted(vqa_images.glob("*.jpg"))
    assert len(paths) == 60

    for path in paths:
        loaded = load_image(path)
        assert isinstance(loaded, LoadedImage)
        assert loaded.format == "JPEG"
        assert loaded.image.mode in ("L", "RGB")
        assert loaded.metadata == {"rows": loaded.image.height, "columns": loaded.image.width}
        assert loaded.image.info == {}

    widest = load_image(vqa_images / "synpic100132.jpg")
    assert widest.image.size == (2321, 1384)


def test_cxr_png_thumbnail_and_original(cxr_dir):
    thumbnail = load_image(cxr_dir / "images" / "00000001_000.png")
    original = load_image(cxr_dir / "fullres" / "00000003_000.png")

    # The thumbnails are stored as RGB with three equal channels.
    with Image.open(cxr_dir / "images" / "00000001_000.png") as raw:
        assert raw.mode == "RGB"
    assert thumbnail.image.mode == "L"
    assert thumbnail.image.size == (64, 64)
    assert thumbnail.format == "PNG"
    assert original.image.mode == "L"
    assert original.image.size == (1024, 1024)


def test_gray_collapse_keeps_pixels(cxr_dir):
    path = cxr_dir / "images" / "00000001_000.png"
    with Image.open(path) as raw:
        red = np.asarray(raw.convert("RGB"))[..., 0]

    loaded = load_image(path)

    assert np.array_equal(np.asarray(loaded.image), red)


# Broken and hostile files


def test_missing_file(tmp_path):
    with pytest.raises(ImageError) as caught:
        load_image(tmp_path / "absent.png")

    assert caught.value.reason == "missing_image"
    assert caught.value.path == str(tmp_path / "absent.png")
    assert "absent.png" in str(caught.value)
    assert "Fix:" in str(caught.value)


def test_directory_is_missing_image(tmp_path):
    with pytest.raises(ImageError) as caught:
        load_image(tmp_path)
    assert caught.value.reason == "missing_image"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert caught.value.reason == "corrupt_image"


def test_truncated_jpeg(tmp_path, small_jpeg_bytes):
    path = tmp_path / "truncated.jpg"
    path.write_bytes(small_jpeg_bytes[: len(small_jpeg_bytes) // 2])

    with pytest.raises(ImageError) as caught:
        load_image(path)

    assert caught.value.reason == "corrupt_image"
    assert "truncated" in caught.value.detail


def test_truncated_real_png(tmp_path, cxr_dir):
    data = (cxr_dir / "fullres" / "00000003_000.png").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 3])

    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert caught.value.reason == "corrupt_image"


def test_png_with_corrupt_pixel_data(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8)).save(
        buffer, format="PNG"
    )
    data = bytearray(buffer.getvalue())
    idat = data.index(b"IDAT")
    for offset in range(idat + 10, idat + 40):
        data[offset] ^= 0xFF
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))

    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert caught.value.reason == "corrupt_image"


def test_damaged_png_header_is_corrupt(tmp_path):
    data = bytearray(png_declaring(16, 16))
    data[20] ^= 0xFF  # inside IHDR, so its CRC no longer matches
    path = tmp_path / "header.png"
    path.write_bytes(bytes(data))

    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert caught.value.reason == "corrupt_image"


def test_random_bytes_are_unsupported(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())

    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert caught.value.reason == "unsupported_format"


def test_text_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("Findings: no acute cardiopulmonary process.\n", encoding="utf-8")

    with pytest.raises(ImageError) as caught:
        load_image(path)

    assert caught.value.reason == "unsupported_format"
    assert "notes.png" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("figure.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"),
        ("icon.ico", None),
    ],
)
def test_formats_outside_allowlist(tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        Image.new("RGB", (16, 16), (200, 10, 10)).save(path, format="ICO")
    else:
        path.write_bytes(content)

    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert caught.value.reason == "unsupported_format"


def test_bomb_rejected_before_decoding(tmp_path, monkeypatch):
    # 8000 x 8000 = 64 million pixels: above our limit, below Pillow's own warning.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(8000, 8000))

    def fail_load(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail_load)
    with pytest.raises(ImageError) as caught:
        load_image(path)

    assert caught.value.reason == "decompression_bomb"
    assert "64,000,000" in caught.value.detail
    assert f"{MAX_IMAGE_PIXELS:,}" in str(caught.value)


def test_huge_bomb_header(tmp_path):
    # 100000 x 100000 would need 10 GB; Pillow's own guard already refuses it.
    path = tmp_path / "huge.png"
    path.write_bytes(png_declaring(100_000, 100_000))

    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert caught.value.reason == "decompression_bomb"


def test_limit_is_inclusive(tmp_path, monkeypatch):
    import corpusforge.generators.imaging.io as imaging_io

    monkeypatch.setattr(imaging_io, "MAX_IMAGE_PIXELS", 64 * 64)
    exact = tmp_path / "exact.png"
    Image.new("L", (64, 64), 9).save(exact)
    over = tmp_path / "over.png"
    Image.new("L", (64, 65), 9).save(over)

    assert load_image(exact).image.size == (64, 64)
    with pytest.raises(ImageError) as caught:
        load_image(over)
    assert caught.value.reason == "decompression_bomb"


# Modes and orientation


def _save(path: Path, image: Image.Image, **params) -> Path:
    image.save(path, **params)
    return path


@pytest.mark.parametrize(
    ("mode", "suffix", "expected"),
    [
        ("1", ".png", "L"),
        ("LA", ".png", "L"),
        ("P", ".png", "RGB"),
        ("RGBA", ".png", "RGB"),
        ("CMYK", ".jpg", "RGB"),
        ("I;16", ".png", "L"),
        ("F", ".tif", "L"),
        ("RGB", ".bmp", "RGB"),
        ("L", ".gif", "L"),
        ("RGB", ".webp", "RGB"),
    ],
)
def test_modes_become_l_or_rgb(tmp_path, mode, suffix, expected):
    gradient = np.linspace(0, 1, 32 * 48).reshape(32, 48)
    color = np.stack([gradient, gradient[::-1], gradient * 0.5], axis=-1)
    rgb = Image.fromarray((color * 255).astype(np.uint8), mode="RGB")
    if mode == "I;16":
        source = Image.fromarray((gradient * 4000).astype(np.uint16))
    elif mode == "F":
        source = Image.fromarray((gradient * 1000 - 200).astype(np.float32), mode="F")
    elif mode == "L":
        source = rgb.convert("L")
    else:
        source = rgb.convert(mode)
    params = {"lossless": True} if suffix == ".webp" else {}
    path = _save(tmp_path / f"image{suffix}", source, **params)

    loaded = load_image(path)

    assert loaded.image.mode == expected
    assert loaded.image.size == (48, 32)


def test_sixteen_bit_uses_percentile_window(tmp_path):
    values = np.tile(np.arange(1000, 1100, dtype=np.uint16), (10, 1))
    path = _save(tmp_path / "deep.png", Image.fromarray(values))

    pixels = np.asarray(load_image(path).image)

    assert pixels.min() == 0
    assert pixels.max() == 255
    assert np.all(np.diff(pixels[0].astype(int)) >= 0)


def test_constant_sixteen_bit_image(tmp_path):
    path = _save(tmp_path / "flat.png", Image.fromarray(np.full((8, 8), 700, dtype=np.uint16)))
    assert np.asarray(load_image(path).image).max() == 0


def test_exif_orientation_applied(tmp_path):
    image = Image.new("L", (40, 20), 0)
    image.paste(255, (0, 0, 10, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = _save(tmp_path / "rotated.jpg", image, exif=exif.tobytes(), quality=95)

    loaded = load_image(path)

    assert loaded.image.size == (20, 40)
    top = np.asarray(loaded.image)[:5].mean()
    bottom = np.asarray(loaded.image)[-5:].mean()
    assert top > 200
    assert bottom < 50


# PNG encoding


def test_exif_and_icc_removed_from_png(tmp_path, small_jpeg_bytes):
    with Image.open(io.BytesIO(small_jpeg_bytes)) as source:
        image = source.convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "Scanner Maker"  # Make
    exif[0x0110] = "Model 9"  # Model
    exif[0x0132] = "2019:03:04 10:11:12"  # DateTime
    exif[0x013B] = "Dr. Jane Roe"  # Artist
    exif[0x010E] = "patient John Doe, MRN 12345"  # ImageDescription
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = _save(tmp_path / "tagged.jpg", image, exif=exif.tobytes(), icc_profile=icc)
    with Image.open(path) as check:
        assert len(check.getexif()) == 5
        assert check.info.get("icc_profile")

    png = encode_png(load_image(path).image)

    assert png_chunk_types(png)[0] == b"IHDR"
    assert set(png_chunk_types(png)) == {b"IHDR", b"IDAT", b"IEND"}
    with Image.open(io.BytesIO(png)) as decoded:
        assert len(decoded.getexif()) == 0
        assert "icc_profile" not in decoded.info
        assert "exif" not in decoded.info
    for secret in (b"Jane Roe", b"John Doe", b"12345", b"Exif", b"Scanner Maker"):
        assert secret not in png


def test_png_text_chunks_removed(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", "Jane Roe")
    info.add_itxt("Comment", "Ünïcode note", zip=True)
    path = tmp_path / "text.png"
    Image.new("L", (16, 16), 80).save(path, pnginfo=info, dpi=(300, 300))

    png = encode_png(load_image(path).image)

    assert set(png_chunk_types(png)) == {b"IHDR", b"IDAT", b"IEND"}
    assert b"Jane Roe" not in png


def test_same_pixels_same_png_bytes():
    pixels = np.random.default_rng(3).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    plain = Image.fromarray(pixels, mode="RGB")
    decorated = Image.fromarray(pixels.copy(), mode="RGB")
    decorated.info.update({"exif": b"Exif\x00\x00junk", "dpi": (72, 72), "icc_profile": b"x"})

    assert encode_png(plain) == encode_png(decorated)
    with Image.open(io.BytesIO(encode_png(plain))) as decoded:
        assert np.array_equal(np.asarray(decoded), pixels)


def test_png_bytes_same_in_new_process():
    code = (
        "import hashlib, numpy as np; from PIL import Image;"
        "from corpusforge.generators.imaging.io import encode_png;"
        "p = np.arange(97 * 61, dtype=np.uint32).reshape(61, 97) % 251;"
        "print(hashlib.sha256(encode_png(Image.fromarray(p.astype(np.uint8)))).hexdigest())"
    )
    pixels = (np.arange(97 * 61, dtype=np.uint32).reshape(61, 97) % 251).astype(np.uint8)
    expected = hashlib.sha256(encode_png(Image.fromarray(pixels))).hexdigest()
    environment = dict(os.environ, PYTHONHASHSEED="12345")

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_encode_png_converts_other_modes():
    rgba = Image.new("RGBA", (4, 4), (10, 10, 10, 0))
    with Image.open(io.BytesIO(encode_png(rgba))) as decoded:
        assert decoded.mode == "L"


# Hashes, cells and errors


def test_content_hash_is_sha256():
    assert content_hash(b"") == hashlib.sha256(b"").hexdigest()
    assert content_hash(b"\x00" * 10) == hashlib.sha256(b"\x00" * 10).hexdigest()


def test_image_cell_layout():
    png = encode_png(Image.new("L", (2, 2)))
    path = f"images/{content_hash(png)[:16]}.png"

    assert image_cell(png, path) == {"bytes": png, "path": path}


@pytest.mark.parametrize("path", ["", "/abs/x.png", "../x.png", "images/../../x.png", "C:\\x.png"])
def test_image_cell_rejects_unsafe_paths(path):
    with pytest.raises(ValueError, match="relative path"):
        image_cell(b"png", path)


def test_image_error_pickles():
    error = ImageError("corrupt_image", "/data/a.png", "broken data stream")
    copy = pickle.loads(pickle.dumps(error))

    assert (copy.reason, copy.path, copy.detail) == (error.reason, error.path, error.detail)
    assert str(copy) == str(error)


def test_image_error_rejects_unknown_reason():
    with pytest.raises(ValueError, match="missing_image"):
        ImageError("bad_pixels", "a.png", "x")


# safe_join


def test_safe_join_inside_root(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"x")

    assert safe_join(tmp_path, "images/a.png") == (tmp_path / "images" / "a.png").resolve()
    assert safe_join(tmp_path, "images/../images/a.png") == (tmp_path / "images/a.png").resolve()
    assert safe_join(tmp_path, "images/absent.png").name == "absent.png"


def test_safe_join_unicode_name(tmp_path):
    name = "тест_画像 ü.png"
    (tmp_path / name).write_bytes(b"x")
    assert safe_join(tmp_path, name) == (tmp_path / name).resolve()


@pytest.mark.parametrize(
    "relative",
    [
        "../outside.png",
        "images/../../outside.png",
        "/etc/passwd",
        "//server/share/x.png",
        "C:\\images\\x.png",
        "C:x.png",
        "\\\\server\\share\\x.png",
    ],
)
def test_safe_join_rejects_escapes(tmp_path, relative):
    root = tmp_path / "root"
    root.mkdir()

    with pytest.raises(ImageError) as caught:
        safe_join(root, relative)
    assert caught.value.reason == "path_escapes_root"


def test_safe_join_rejects_symlink_escape(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file_link.png").symlink_to(outside / "secret.png")

    for relative in ("link/secret.png", "file_link.png"):
        with pytest.raises(ImageError) as caught:
            safe_join(root, relative)
        assert caught.value.reason == "path_escapes_root"


def test_safe_join_allows_symlink_inside(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "a.png").write_bytes(b"x")
    (tmp_path / "alias.png").symlink_to(tmp_path / "store" / "a.png")

    assert safe_join(tmp_path, "alias.png") == (tmp_path / "store" / "a.png").resolve()


def test_safe_join_through_symlinked_root(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.png").write_bytes(b"x")
    (tmp_path / "root_link").symlink_to(real, target_is_directory=True)

    assert safe_join(tmp_path / "root_link", "a.png") == (real / "a.png").resolve()


@pytest.mark.parametrize("relative", ["", "   ", "a\x00.png"])
def test_safe_join_empty_or_nul(tmp_path, relative):
    with pytest.raises(ImageError) as caught:
        safe_join(tmp_path, relative)
    assert caught.value.reason == "missing_image"
