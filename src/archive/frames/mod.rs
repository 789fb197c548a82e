//! The zstd layer as a sequence of independent frames.
//!
//! The writer cuts the tar stream into pieces of [`FRAME`] bytes and compresses each into a
//! frame of its own, with its content size and checksum, on a few threads. Any zstd decoder
//! reads the concatenation as one stream (`zstd -d`, `tar -I zstd`). agentbak's reader sees
//! the frames' boundaries and sizes from their headers without decompressing, and so can
//! decompress several at once, each straight into a buffer of its size (a streaming decoder
//! decodes into its window first and copies out of it).
//!
//! A stream that is not made of such frames (an archive from an older version, or one
//! compressed by hand) is decompressed by a streaming decoder from the first frame that is
//! not, exactly as before.
//!
//! `encode` writes the frames, `decode` reads them (and hands the rest of a stream that is not
//! made of them to a streaming decoder), `ordered` runs the compressing and decompressing
//! threads. Invariant of both directions: whatever the threads, frames come out in the order
//! they went in.

mod decode;
mod encode;
mod ordered;
#[cfg(test)]
mod tests;

use std::io;

use zeroize::Zeroizing;
use zstd::zstd_safe;

pub(crate) use decode::{Piece, decode, piece};
pub(crate) use encode::FrameEncoder;

/// Bytes of the tar stream per frame.
pub(crate) const FRAME: usize = 2 << 20;

/// Largest frame content the reader decompresses in one piece; a larger frame, or one that
/// does not state its size, goes to the streaming decoder.
const MAX_FRAME: usize = 2 * FRAME;

/// A buffer whose content may be a secret the leak gate has not yet seen: zeroed when dropped.
type Buf = Zeroizing<Vec<u8>>;

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(zstd_safe::get_error_name(code))
}
