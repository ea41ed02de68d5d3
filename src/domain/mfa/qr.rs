//! The QR code of an otpauth URI, as a PNG: black modules on white, 4
//! pixels per module, with the 4-module quiet zone scanners need.
use qrcodegen::{QrCode, QrCodeEcc};

const SCALE: i32 = 4;
const QUIET_ZONE: i32 = 4;

/// A greyscale PNG of the QR code of `text`.
pub fn png(text: &str) -> anyhow::Result<Vec<u8>> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium)
        .map_err(|_| anyhow::anyhow!("the otpauth URI is too long for a QR code"))?;
    let side = (qr.size() + 2 * QUIET_ZONE) * SCALE;
    let mut pixels = Vec::with_capacity(usize::try_from(side * side).unwrap_or(0));
    for y in 0..side {
        for x in 0..side {
            let dark = qr.get_module(x / SCALE - QUIET_ZONE, y / SCALE - QUIET_ZONE);
            pixels.push(if dark { 0u8 } else { 255u8 });
        }
    }
    let side = u32::try_from(side)?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_png_decodes_to_the_text() {
        let text = "otpauth://totp/authd:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=authd&algorithm=SHA1&digits=6&period=30";
        let Ok(bytes) = png(text) else { panic!("png") };
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let Ok(mut reader) = decoder.read_info() else {
            panic!("decode")
        };
        let mut pixels = vec![0; reader.output_buffer_size().unwrap_or(0)];
        let Ok(info) = reader.next_frame(&mut pixels) else {
            panic!("frame")
        };
        let (w, h) = (info.width as usize, info.height as usize);
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        let decoded = grids[0].decode().map(|(_, content)| content).ok();
        assert_eq!(decoded.as_deref(), Some(text));
    }
}
