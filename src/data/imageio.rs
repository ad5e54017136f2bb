//! Image decoding that survives real folders: any colour type becomes 8-bit RGB, EXIF
//! orientation is honoured, decompression bombs are refused by size limits, and a truncated
//! JPEG (which the decoder completes with grey without a word) is flagged.
//!
//! This is the one decoder: the model pipeline, `predict --show` and the dashboard's previews
//! all call it, so what is shown is what was scored.

use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// Largest width or height accepted. Larger images are almost certainly bombs or scans that
/// no classifier here was trained on.
pub const MAX_DIMENSION: u32 = 20_000;
/// Largest decoder allocation accepted (bytes).
pub const MAX_ALLOC: u64 = 1 << 30;

/// Why a truncated image is left out when the user asks for it (`--skip-truncated`).
pub const TRUNCATED_SKIP_REASON: &str =
    "truncated: the JPEG data ends before its end-of-image marker (--skip-truncated)";

/// A decoded image and what the decoder had to make up for.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// 8-bit RGB, upright.
    pub image: RgbImage,
    /// The file ends before its image data does (a JPEG without its end-of-image marker): the
    /// missing part of the picture was filled in by the decoder, not read from the file.
    pub truncated: bool,
}

/// Decodes `path` to 8-bit RGB, upright, and says whether the file was cut short.
pub fn decode(path: &Path) -> Result<Decoded> {
    let decode_err = |reason: String| Error::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let reader = ImageReader::open(path)
        .map_err(io_err)?
        .with_guessed_format()
        .map_err(|e| decode_err(e.to_string()))?;
    if reader.format() != Some(ImageFormat::Jpeg) {
        return Ok(Decoded {
            image: decode_reader(reader, path)?,
            truncated: false,
        });
    }
    // The JPEG decoder reads the whole file into memory anyway; reading it here lets the
    // truncation check see the very bytes that are decoded. (zune-jpeg notices a short file
    // only in a log line, and the `image` crate runs it in its lenient mode with no way to
    // ask, so the check is ours.)
    let bytes = std::fs::read(path).map_err(io_err)?;
    let truncated = jpeg_truncated(&bytes);
    let image = decode_reader(
        ImageReader::with_format(Cursor::new(bytes), ImageFormat::Jpeg),
        path,
    )?;
    Ok(Decoded { image, truncated })
}

/// Decodes an image held in memory (an upload to `reason serve`) the way [`decode`] decodes a
/// file: same limits, EXIF orientation and truncation check; the format comes from the bytes
/// alone. `name` only labels errors.
pub fn decode_bytes(bytes: &[u8], name: &str) -> Result<Decoded> {
    let path = Path::new(name);
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Decode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if reader.format().is_none() {
        return Err(Error::Decode {
            path: path.to_path_buf(),
            reason: NOT_AN_IMAGE.to_string(),
        });
    }
    let truncated = reader.format() == Some(ImageFormat::Jpeg) && jpeg_truncated(bytes);
    Ok(Decoded {
        image: decode_reader(reader, path)?,
        truncated,
    })
}

/// The reason [`decode_bytes`] gives for bytes that are no image format it knows.
pub const NOT_AN_IMAGE: &str = "not an image: no known image format starts with these bytes";
/// How the reason of an image refused by the size limits starts (a decompression bomb).
pub const REFUSED: &str = "refused:";

/// Decodes `path` to 8-bit RGB, upright ([`decode`] for callers that need only the pixels).
pub fn decode_rgb(path: &Path) -> Result<RgbImage> {
    decode(path).map(|d| d.image)
}

/// Whether the file at `path` is a truncated JPEG, from its bytes alone (no decoding): what
/// [`decode`] reports as `truncated`. An unreadable file is not called truncated.
pub fn file_truncated(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| jpeg_truncated(&bytes))
}

fn decode_reader<R: BufRead + Seek>(mut reader: ImageReader<R>, path: &Path) -> Result<RgbImage> {
    let decode_err = |e: ImageError| Error::Decode {
        path: path.to_path_buf(),
        reason: match e {
            ImageError::Limits(limit) => format!(
                "{REFUSED} {limit} (at most {MAX_DIMENSION} pixels a side and {} MiB decoded; \
                 a decompression bomb or an oversized scan)",
                MAX_ALLOC >> 20
            ),
            other => other.to_string(),
        },
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);

    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    // A missing or unreadable EXIF block is not a reason to drop the image.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    img.apply_orientation(orientation);
    Ok(match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// Whether JPEG `bytes` end before their end-of-image (EOI) marker. The marker segments are
/// followed by their lengths (so an EXIF thumbnail's own EOI is stepped over) and the
/// entropy-coded data is scanned for the next marker; whatever follows the first EOI (padding,
/// a second image) is ignored. Bytes that do not start like a JPEG are not called truncated.
pub fn jpeg_truncated(bytes: &[u8]) -> bool {
    const SOS: u8 = 0xDA;
    const EOI: u8 = 0xD9;
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        // Find the next marker: 0xFF (any number of fill bytes), then its code.
        while i < bytes.len() && bytes[i] != 0xFF {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&code) = bytes.get(i) else {
            return true;
        };
        i += 1;
        match code {
            EOI => return false,
            // Stand-alone markers (restart, TEM) and a stray stuffed zero have no length.
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(len) = bytes
            .get(i..i + 2)
            .map(|l| u16::from_be_bytes([l[0], l[1]]))
        else {
            return true;
        };
        let end = i + usize::from(len);
        if end > bytes.len() {
            return true;
        }
        // A nonsense length (< 2) is stepped over like garbage: the scan looks for the next 0xFF.
        i = end.max(i);
        if code == SOS {
            // Entropy-coded data: 0xFF is followed by a stuffed 0x00 or a restart marker,
            // anything else is the next marker.
            while i + 1 < bytes.len() {
                if bytes[i] == 0xFF && !matches!(bytes[i + 1], 0x00 | 0xD0..=0xD7) {
                    break;
                }
                i += 1;
            }
            if i + 1 >= bytes.len() {
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, Rgb, Rgba};

    #[test]
    fn grayscale_16bit_and_alpha_images_become_rgb8() {
        let dir = tempfile::tempdir().unwrap();
        let gray = dir.path().join("gray.png");
        ImageBuffer::from_pixel(3, 2, Luma([200u8]))
            .save(&gray)
            .unwrap();
        let deep = dir.path().join("deep.png");
        ImageBuffer::from_pixel(3, 2, Rgb([65535u16, 0, 32896]))
            .save(&deep)
            .unwrap();
        let alpha = dir.path().join("alpha.png");
        ImageBuffer::from_pixel(3, 2, Rgba([10u8, 20, 30, 0]))
            .save(&alpha)
            .unwrap();

        assert_eq!(
            decode_rgb(&gray).unwrap().get_pixel(0, 0).0,
            [200, 200, 200]
        );
        assert_eq!(decode_rgb(&deep).unwrap().get_pixel(1, 1).0, [255, 0, 128]);
        let a = decode_rgb(&alpha).unwrap();
        assert_eq!(a.dimensions(), (3, 2));
        assert_eq!(a.get_pixel(2, 1).0, [10, 20, 30]);
    }

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn exif_orientation_is_applied() {
        // Stored as 8x16 with orientation 6; upright it is 16x8, red on the left, blue on the right.
        let img = decode_rgb(&fixture("exif_rotate90.jpg")).unwrap();
        assert_eq!(img.dimensions(), (16, 8));
        let left = img.get_pixel(2, 4).0;
        let right = img.get_pixel(13, 4).0;
        assert!(left[0] > 200 && left[2] < 60, "left {left:?}");
        assert!(right[2] > 200 && right[0] < 60, "right {right:?}");
    }

    #[test]
    fn cmyk_and_grayscale_jpegs_become_rgb() {
        let img = decode_rgb(&fixture("cmyk.jpg")).unwrap();
        assert_eq!(img.dimensions(), (16, 8));
        let left = img.get_pixel(2, 4).0;
        assert!(
            left[0] > 200 && left[1] < 60 && left[2] < 60,
            "cmyk red came out {left:?}"
        );
        let gray = decode_rgb(&fixture("gray.jpg")).unwrap();
        let p = gray.get_pixel(2, 4).0;
        assert!(p[0] == p[1] && p[1] == p[2], "{p:?}");
    }

    #[test]
    fn truncated_and_garbage_files_are_decode_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.jpg");
        RgbImage::from_pixel(64, 64, Rgb([1, 2, 3]))
            .save(&good)
            .unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let truncated = dir.path().join("truncated.jpg");
        std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
        let garbage = dir.path().join("garbage.png");
        std::fs::write(&garbage, b"definitely not a png").unwrap();

        for path in [&truncated, &garbage] {
            let err = decode_rgb(path).unwrap_err().to_string();
            assert!(
                err.contains(path.file_name().unwrap().to_str().unwrap()),
                "{err}"
            );
        }
        assert!(matches!(
            decode_rgb(&dir.path().join("absent.jpg")),
            Err(Error::Io { .. })
        ));
    }

    /// A busy 256x192 picture (so most of its JPEG is entropy-coded data), saved as JPEG.
    fn busy_jpeg(path: &Path) -> Vec<u8> {
        RgbImage::from_fn(256, 192, |x, y| {
            let v = (x * 31 + y * 17) ^ (x * y);
            Rgb([v as u8, (v >> 3) as u8, (x ^ y) as u8])
        })
        .save(path)
        .unwrap();
        std::fs::read(path).unwrap()
    }

    #[test]
    fn a_jpeg_cut_in_half_decodes_but_is_flagged_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.jpg");
        let bytes = busy_jpeg(&whole);
        let half = dir.path().join("half.jpg");
        std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();

        let decoded = decode(&whole).unwrap();
        assert!(!decoded.truncated);
        assert!(!file_truncated(&whole));
        // The decoder completes the missing half silently: same size, no error.
        let cut = decode(&half).unwrap();
        assert_eq!(cut.image.dimensions(), (256, 192));
        assert!(cut.truncated);
        assert!(file_truncated(&half));
    }

    #[test]
    fn data_after_the_end_marker_is_not_truncation_and_a_missing_marker_is() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = busy_jpeg(&dir.path().join("whole.jpg"));
        assert!(bytes.ends_with(&[0xFF, 0xD9]));
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0u8; 100]);
        padded.extend_from_slice(b"trailing garbage \xFF\xD8");
        assert!(!jpeg_truncated(&padded));
        let padded_path = dir.path().join("padded.jpg");
        std::fs::write(&padded_path, &padded).unwrap();
        assert!(!decode(&padded_path).unwrap().truncated);
        // Only the final marker missing: every pixel is there, but the file is still cut.
        assert!(jpeg_truncated(&bytes[..bytes.len() - 2]));
        // A download padded out with zeros never reaches its marker either.
        let mut zeroed = bytes[..bytes.len() * 2 / 3].to_vec();
        zeroed.resize(bytes.len() + 4096, 0);
        assert!(jpeg_truncated(&zeroed));
        // Not a JPEG: never called truncated (its own decoder decides).
        assert!(!jpeg_truncated(b"\x89PNG\r\n\x1a\n"));
        assert!(!jpeg_truncated(&[]));
    }

    #[test]
    fn real_jpegs_with_exif_cmyk_and_grayscale_are_not_truncated() {
        for name in ["exif_rotate90.jpg", "cmyk.jpg", "gray.jpg"] {
            let decoded = decode(&fixture(name)).unwrap();
            assert!(!decoded.truncated, "{name}");
        }
    }

    #[test]
    fn oversized_dimensions_are_refused_before_allocation() {
        // A PNG header that claims 30000x30000 pixels: the limits must refuse it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.png");
        let mut png = Vec::new();
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&30_000u32.to_be_bytes());
        ihdr.extend_from_slice(&30_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&(ihdr.len() as u32).to_be_bytes());
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&ihdr);
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
        std::fs::write(&path, png).unwrap();
        let err = decode_rgb(&path).unwrap_err().to_string();
        assert!(err.contains("bomb.png"), "{err}");
        assert!(
            err.contains("refused") && err.contains("20000 pixels a side"),
            "{err}"
        );
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
