//! `whole_file` rules: the file's bytes are the value.
//!
//! A text file's value is its text. A binary file's value is carried as standard base64
//! (stores such as Vault KV hold strings), and its record says so ([`Encoding::Base64`]), so
//! that rehydration decodes it back to the exact bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Context, Site};
use crate::secret::Secret;

/// How a whole file's value is carried in its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The value is the file's text.
    Utf8,
    /// The value is the file's bytes in standard base64.
    Base64,
}

/// The record of a whole-file value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WholeStyle {
    /// How the value is carried.
    pub encoding: Encoding,
}

/// The site of a whole file; binary files are carried base64.
pub(crate) fn locate(input: &[u8], binary: bool) -> Site {
    let (value, encoding) = if binary || std::str::from_utf8(input).is_err() {
        (Secret::from(STANDARD.encode(input)), Encoding::Base64)
    } else {
        (Secret::from_slice(input), Encoding::Utf8)
    };
    Site {
        range: 0..input.len(),
        value,
        context: Context::WholeFile(WholeStyle { encoding }),
    }
}

/// The file's bytes from a store value: base64 decoded when the record says so.
pub(crate) fn decode(style: &WholeStyle, value: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    match style.encoding {
        Encoding::Utf8 => Some(Zeroizing::new(value.to_vec())),
        Encoding::Base64 => {
            // Stores and editors add line breaks; the value is the bytes, not the layout.
            let compact: Zeroizing<Vec<u8>> = Zeroizing::new(
                value
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect(),
            );
            STANDARD.decode(&*compact).ok().map(Zeroizing::new)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_travel_as_base64() {
        let bytes = b"\x00\xffkey";
        let site = locate(bytes, true);
        let Context::WholeFile(style) = site.context else {
            panic!()
        };
        assert_eq!(style.encoding, Encoding::Base64);
        assert_eq!(&*decode(&style, site.value.expose()).unwrap(), bytes);
        assert!(decode(&style, b"!!").is_none());
    }
}
