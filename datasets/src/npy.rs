//! NumPy's `.npy` format, version 1.0, for integer arrays: what `np.load` reads, written
//! here so that exporting the data to another framework needs neither Python nor a
//! dependency.
//!
//! ```text
//! magic          6 bytes   \x93NUMPY
//! version        2 bytes   1, 0
//! header_len     u16       little-endian: the bytes of the header that follows
//! header         ASCII     a Python dict literal: {'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }
//!                          padded with spaces and ended by '\n', so that magic to header
//!                          end is a multiple of 64 bytes (the data starts aligned)
//! data           the elements in C (row-major) order, little-endian
//! ```

use std::io::{self, Write};

pub const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Magic, version and header length.
const PREFIX_BYTES: usize = 6 + 2 + 2;
/// The data starts at a multiple of this, as NumPy writes it.
const ALIGNMENT: usize = 64;

/// An element type of the arrays this writes.
pub trait Element: Copy {
    /// NumPy's type string: byte order, kind, bytes.
    const DESCR: &'static str;
    fn write_le(self, out: &mut impl Write) -> io::Result<()>;
}

impl Element for i32 {
    const DESCR: &'static str = "<i4";
    fn write_le(self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.to_le_bytes())
    }
}

impl Element for i64 {
    const DESCR: &'static str = "<i8";
    fn write_le(self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.to_le_bytes())
    }
}

/// The shape as a Python tuple: `()`, `(5,)` (a one-element tuple needs its comma, or it
/// reads as a number), `(2, 3)`.
fn shape_tuple(shape: &[usize]) -> String {
    match shape {
        [only] => format!("({only},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// Everything before the data of an array of `descr` and `shape`: magic, version, header
/// length and the padded header.
pub fn preamble(descr: &str, shape: &[usize]) -> io::Result<Vec<u8>> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {}, }}", shape_tuple(shape));
    // Spaces, then the final newline, up to the next multiple of the alignment.
    let unpadded = PREFIX_BYTES + header.len() + 1;
    header.extend(std::iter::repeat_n(' ', unpadded.next_multiple_of(ALIGNMENT) - unpadded));
    header.push('\n');
    // Version 1.0 holds the header's length in two bytes; only a shape of hundreds of
    // dimensions would need more.
    let length = u16::try_from(header.len()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("npy: a header of {} bytes does not fit version 1.0", header.len()))
    })?;
    let mut bytes = Vec::with_capacity(PREFIX_BYTES + header.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    Ok(bytes)
}

/// Writes the array of `shape` whose elements, in row-major order, are `values`. Values
/// are streamed, so an array need not be held whole in memory; a count of values other
/// than the shape's is an `InvalidInput` error (what was written is then not an array).
pub fn write<T: Element>(out: &mut impl Write, shape: &[usize], values: impl IntoIterator<Item = T>) -> io::Result<()> {
    let expected = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("npy: shape {} holds more elements than memory", shape_tuple(shape)))
    })?;
    out.write_all(&preamble(T::DESCR, shape)?)?;
    let mut written = 0usize;
    for value in values {
        if written == expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("npy: more than the {expected} values of shape {}", shape_tuple(shape)),
            ));
        }
        value.write_le(out)?;
        written += 1;
    }
    if written != expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("npy: {written} values for shape {}, which holds {expected}", shape_tuple(shape)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header NumPy itself writes for `np.save(f, np.zeros((2, 3), '<i4'))`, padding
    /// aside, and the layout around it.
    #[test]
    fn the_preamble_is_numpys_header_padded_to_64_bytes() {
        for (descr, shape, dict) in [
            ("<i4", &[2usize, 3][..], "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }"),
            ("<i8", &[5][..], "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }"),
            ("<i8", &[][..], "{'descr': '<i8', 'fortran_order': False, 'shape': (), }"),
            ("<i4", &[0, 4096][..], "{'descr': '<i4', 'fortran_order': False, 'shape': (0, 4096), }"),
        ] {
            let bytes = preamble(descr, shape).unwrap();
            assert_eq!(bytes.len() % 64, 0, "{dict}");
            assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
            let length = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!(10 + length, bytes.len());
            let header = std::str::from_utf8(&bytes[10..]).unwrap();
            assert!(header.ends_with('\n'));
            assert_eq!(header.trim_end_matches('\n').trim_end_matches(' '), dict);
        }
    }

    #[test]
    fn values_follow_the_preamble_little_endian_in_row_major_order() {
        let mut bytes = Vec::new();
        write(&mut bytes, &[2, 2], [1i32, -2, 256, i32::MAX]).unwrap();
        let (head, data) = bytes.split_at(preamble("<i4", &[2, 2]).unwrap().len());
        assert_eq!(head, preamble("<i4", &[2, 2]).unwrap());
        assert_eq!(data, [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0x7f]);
        let mut bytes = Vec::new();
        write(&mut bytes, &[1], [-1i64]).unwrap();
        assert_eq!(&bytes[preamble("<i8", &[1]).unwrap().len()..], [0xff; 8]);
    }

    #[test]
    fn a_count_of_values_other_than_the_shapes_is_refused() {
        for values in [vec![1i32, 2, 3], vec![1, 2, 3, 4, 5]] {
            let error = write(&mut Vec::new(), &[2, 2], values.clone()).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{values:?}");
            assert!(error.to_string().contains("(2, 2)"), "{error}");
        }
    }
}
