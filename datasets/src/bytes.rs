//! The byte-level encoding of the Long Range Arena text tasks (Text, Retrieval).
//!
//! The official pipeline encodes with `tfds.deprecated.text.ByteTextEncoder`: every byte
//! of the UTF-8 text becomes the token `byte + 1`, so that id 0 is left for padding and
//! the vocabulary has 257 entries. No byte is dropped or normalised, and invalid UTF-8
//! needs no special case: the encoder sees bytes, not characters.

/// Padding id; no byte maps to it.
pub const PAD: u32 = 0;

/// 256 byte values plus padding.
pub const VOCAB_SIZE: usize = 257;

/// The token of one byte.
pub fn token(byte: u8) -> u32 {
    byte as u32 + 1
}

/// The byte of a token, `None` for padding or an id outside the vocabulary.
pub fn byte(token: u32) -> Option<u8> {
    match token {
        1..=256 => Some((token - 1) as u8),
        _ => None,
    }
}

/// Token ids of `bytes`, keeping at most the first `max_length` (the official pipeline
/// truncates after encoding: `encode(text)[:max_length]`).
pub fn encode(bytes: &[u8], max_length: usize) -> Vec<u32> {
    bytes.iter().take(max_length).map(|&b| token(b)).collect()
}

/// The bytes of token ids, skipping padding and ids outside the vocabulary (for previews).
pub fn decode(tokens: &[u32]) -> Vec<u8> {
    tokens.iter().filter_map(|&t| byte(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_maps_to_itself_plus_one_and_back() {
        for b in 0..=255u8 {
            assert_eq!(token(b), b as u32 + 1);
            assert_eq!(byte(token(b)), Some(b));
        }
        assert_eq!(byte(PAD), None);
        assert_eq!(byte(VOCAB_SIZE as u32), None);
    }

    #[test]
    fn multibyte_characters_become_one_token_per_byte() {
        // "é" is two bytes in UTF-8: 0xC3 0xA9.
        assert_eq!(encode("aé".as_bytes(), 10), vec![b'a' as u32 + 1, 0xC3 + 1, 0xA9 + 1]);
    }

    #[test]
    fn encoding_truncates_to_the_maximum_length() {
        let text = b"hello world";
        assert_eq!(encode(text, 5), encode(b"hello", 100));
        assert_eq!(encode(text, 0), Vec::<u32>::new());
        assert_eq!(decode(&encode(text, 100)), text);
    }

    #[test]
    fn decoding_skips_padding() {
        let mut tokens = encode(b"ab", 10);
        tokens.extend([PAD, PAD]);
        assert_eq!(decode(&tokens), b"ab");
    }
}
