//! Image decoding that survives real folders: any colour type becomes 8-bit RGB, EXIF
//! orientation is honoured, and decompression bombs are refused by size limits.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// Largest width or height accepted. Larger images are almost certainly bombs or scans that
/// no classifier here was trained on.
pub const MAX_DIMENSION: u32 = 20_000;
/// Largest decoder allocation accepted (bytes).
pub const MAX_ALLOC: u64 = 1 << 30;

/// Decodes `path` to 8-bit RGB, upright.
pub fn decode_rgb(path: &Path) -> Result<RgbImage> {
    let decode_err = |reason: String| Error::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = ImageReader::open(path)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?
        .with_guessed_format()
        .map_err(|e| decode_err(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);

    let mut decoder = reader
        .into_decoder()
        .map_err(|e| decode_err(e.to_string()))?;
    // A missing or unreadable EXIF block is not a reason to drop the image.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| decode_err(e.to_string()))?;
    img.apply_orientation(orientation);
    Ok(match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
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
