//! A contact sheet of images for the eye: a grid of enlarged images, each over a bar that
//! shows its label. For Pathfinder (two classes) the bar is green with a `1` (the markers
//! are connected) or red with a `0`; for more classes it is neutral, with the class number.

use crate::DataError;

/// 3 x 5 pixel glyphs of the digits 0 to 9, one row per byte, bit 2 the leftmost column.
const GLYPHS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b010, 0b010, 0b010],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

const BACKGROUND: [u8; 3] = [48, 48, 64];
const CONNECTED: [u8; 3] = [40, 150, 60];
const NOT_CONNECTED: [u8; 3] = [180, 50, 50];
/// The bar of a task of more than two classes, where no class is "right".
const CLASS: [u8; 3] = [70, 90, 140];
const GAP: usize = 6;

/// PNG bytes (RGB) of a grid of `(pixels, label)` images of side `size`, `columns` to a
/// row, each enlarged to about 256 pixels, for a task of `classes` classes.
pub fn preview_png<'a>(
    images: impl IntoIterator<Item = (&'a [u8], u8)>,
    size: usize,
    columns: usize,
    classes: usize,
) -> Result<Vec<u8>, DataError> {
    let images: Vec<(&[u8], u8)> = images.into_iter().collect();
    if images.is_empty() || columns == 0 || size == 0 {
        return Err(DataError::new("preview: needs at least one image, one column and a size"));
    }
    if let Some(i) = images.iter().position(|(pixels, _)| pixels.len() != size * size) {
        return Err(DataError::new(format!("preview: image {i} has {} pixels, expected {size}x{size}", images[i].0.len())));
    }
    let scale = (256 / size).max(1);
    let tile = size * scale;
    let glyph_scale = (tile / 64).clamp(1, 4);
    let bar = 7 * glyph_scale;
    let columns = columns.min(images.len());
    let rows = images.len().div_ceil(columns);
    let width = GAP + columns * (tile + GAP);
    let height = GAP + rows * (tile + bar + GAP);
    let mut canvas: Vec<u8> = BACKGROUND.repeat(width * height);
    let mut paint = |x: usize, y: usize, rgb: [u8; 3]| {
        let at = 3 * (y * width + x);
        canvas[at..at + 3].copy_from_slice(&rgb);
    };
    for (i, (pixels, label)) in images.iter().enumerate() {
        let left = GAP + (i % columns) * (tile + GAP);
        let top = GAP + (i / columns) * (tile + bar + GAP);
        for y in 0..tile {
            for x in 0..tile {
                let gray = pixels[(y / scale) * size + x / scale];
                paint(left + x, top + y, [gray; 3]);
            }
        }
        let colour = match (classes, *label) {
            (2, 1) => CONNECTED,
            (2, _) => NOT_CONNECTED,
            _ => CLASS,
        };
        for y in 0..bar {
            for x in 0..tile {
                paint(left + x, top + tile + y, colour);
            }
        }
        // The label in decimal, one 3-pixel glyph and a 1-pixel space per digit.
        for (position, digit) in label.to_string().bytes().enumerate() {
            let glyph = GLYPHS[usize::from(digit - b'0')];
            for (gy, bits) in glyph.iter().enumerate() {
                for gx in 0..3 {
                    if bits & (0b100 >> gx) != 0 {
                        for dy in 0..glyph_scale {
                            for dx in 0..glyph_scale {
                                let x = left + glyph_scale * (1 + 4 * position + gx) + dx;
                                let y = top + tile + glyph_scale * (1 + gy) + dy;
                                paint(x, y, [255; 3]);
                            }
                        }
                    }
                }
            }
        }
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let failed = |e: png::EncodingError| DataError::new(format!("preview: PNG encoding failed: {e}"));
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(&canvas).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sheet_shows_each_image_enlarged_over_a_bar_of_its_label_colour() {
        let dark = [0u8; 4 * 4];
        let bright = [200u8; 4 * 4];
        let png = preview_png([(&dark[..], 0), (&bright[..], 1), (&dark[..], 1)], 4, 2, 2).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut rgb = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut rgb).unwrap();
        // Enlarged 64 times to 256 pixels; a bar of 7 * 4 pixels under each.
        let (tile, bar) = (256, 28);
        assert_eq!((info.width as usize, info.height as usize), (GAP + 2 * (tile + GAP), GAP + 2 * (tile + bar + GAP)));
        let at = |x: usize, y: usize| {
            let i = 3 * (y * info.width as usize + x);
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        let second_tile = GAP + tile + GAP;
        assert_eq!(at(GAP + 100, GAP + 100), [0; 3]);
        assert_eq!(at(second_tile + 100, GAP + 100), [200; 3]);
        assert_eq!(at(GAP + 200, GAP + tile + 3), NOT_CONNECTED);
        assert_eq!(at(second_tile + 200, GAP + tile + 3), CONNECTED);
        assert!(preview_png([(&dark[..3], 0)], 4, 2, 2).is_err());
    }

    #[test]
    fn a_task_of_ten_classes_gets_a_neutral_bar_with_the_class_number() {
        let dark = [0u8; 4 * 4];
        let png = preview_png([(&dark[..], 7), (&dark[..], 1)], 4, 2, 10).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut rgb = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut rgb).unwrap();
        let at = |x: usize, y: usize| {
            let i = 3 * (y * info.width as usize + x);
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        // Glyphs at scale 4 from (4, 4) inside the bar; the glyph of 7 is
        // 111 / 001 / 010 / 010 / 010.
        let (tile, scale) = (256, 4);
        let glyph_pixel = |left: usize, gx: usize, gy: usize| at(left + scale * (1 + gx), GAP + tile + scale * (1 + gy));
        let painted: Vec<Vec<bool>> = (0..5).map(|gy| (0..3).map(|gx| glyph_pixel(GAP, gx, gy) == [255; 3]).collect()).collect();
        let seven = [[true, true, true], [false, false, true], [false, true, false], [false, true, false], [false, true, false]];
        assert_eq!(painted, seven.map(|row| row.to_vec()).to_vec());
        assert_eq!(glyph_pixel(GAP, 0, 1), CLASS);
        // Class 1 of ten is not "connected": the same neutral bar.
        let second = GAP + tile + GAP;
        assert_eq!(at(second + 200, GAP + tile + 3), CLASS);
    }
}
