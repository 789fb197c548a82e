//! Reading: the frames found by their headers, decompressed on a few threads, each straight
//! into a buffer of its content's size; the rest of a stream that is not made of such frames
//! goes to a streaming decoder.
//!
//! Invariants: pieces come out in stream order; a damaged or truncated stream ends in an
//! error, never in short output; a frame's stated size is trusted only up to [`MAX_FRAME`]
//! (a larger claim goes to the streaming decoder, whose window is bounded).

use std::io::{self, BufRead, Read};
use std::sync::mpsc;

use zstd::zstd_safe::{self, DCtx, DParameter};

use super::ordered::Ordered;
use super::{MAX_FRAME, zstd_error};

/// A decompressed piece (the first `n` bytes of a buffer), or the error that ended the stream.
pub(crate) type Piece = io::Result<(Vec<u8>, usize)>;

/// A buffer of `len` bytes, recycled from `spare` when one comes back (a fresh buffer costs
/// page faults); only what a recycled buffer lacks is zeroed.
pub(crate) fn piece(spare: &mpsc::Receiver<Vec<u8>>, len: usize) -> Vec<u8> {
    let mut piece = spare.try_recv().unwrap_or_default();
    piece.resize(len, 0);
    piece
}

/// A decompression job: the frame, its content size, and a buffer for the content.
type Decompress = (Vec<u8>, usize, Vec<u8>);

/// Decompresses the zstd stream `input` into pieces sent in order to `tx`, on `threads`
/// threads. Returns `Ok(true)` at the stream's end, `Ok(false)` if `tx`'s receiver hung up.
///
/// With `checksums` false, the frames' content checksums are not computed: for a caller
/// that checks a stronger hash of the whole stream anyway (the archive's blake3 against its
/// sidecar). Frames for the streaming decoder are always checked.
///
/// At most `threads + 2` frames (compressed, and their content) are in flight here.
pub(crate) fn decode(
    mut input: impl BufRead,
    threads: usize,
    checksums: bool,
    tx: &mpsc::SyncSender<Piece>,
    spare: &mpsc::Receiver<Vec<u8>>,
) -> io::Result<bool> {
    let work = |dctx: &mut DCtx<'static>, (frame, size, mut out): Decompress| {
        out.clear();
        out.reserve_exact(size);
        dctx.decompress(&mut out, &frame).map_err(zstd_error)?;
        if out.len() != size {
            return Err(io::Error::other(format!(
                "a zstd frame decompressed to {} bytes, its header says {size}",
                out.len()
            )));
        }
        Ok((out, frame))
    };
    let decompressor = move || {
        let mut dctx = DCtx::create();
        // Takes any boolean.
        let _ = dctx.set_parameter(DParameter::ForceIgnoreChecksum(!checksums));
        dctx
    };
    let mut pool = Ordered::new(threads, decompressor, work);
    // Sends a decompressed frame on; false if the receiver hung up.
    let forward = |done: io::Result<(Vec<u8>, Vec<u8>)>, frames: &mut Vec<Vec<u8>>| {
        let (out, frame) = done?;
        frames.push(frame);
        let n = out.len();
        io::Result::Ok(tx.send(Ok((out, n))).is_ok())
    };
    let mut frames = Vec::new();
    loop {
        let mut frame = frames.pop().unwrap_or_default();
        match next_frame(&mut input, &mut frame)? {
            Next::End => break,
            Next::Frame(size) => {
                let out = spare.try_recv().unwrap_or_default();
                pool.submit((frame, size, out));
            }
            Next::Other => {
                while let Some(done) = pool.next() {
                    if !forward(done, &mut frames)? {
                        return Ok(false);
                    }
                }
                return stream(io::Cursor::new(frame).chain(input), tx, spare);
            }
        }
        while pool.len() > threads + 1 {
            let done = pool.next().expect("jobs are in flight");
            if !forward(done, &mut frames)? {
                return Ok(false);
            }
        }
    }
    while let Some(done) = pool.next() {
        if !forward(done, &mut frames)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Bytes per piece from the streaming decoder.
const STREAM_PIECE: usize = 1 << 20;

/// Decompresses the rest of the stream with a streaming decoder.
fn stream(
    input: impl Read,
    tx: &mpsc::SyncSender<Piece>,
    spare: &mpsc::Receiver<Vec<u8>>,
) -> io::Result<bool> {
    let mut decoder = zstd::stream::read::Decoder::new(input)?;
    loop {
        let mut buf = piece(spare, STREAM_PIECE);
        match decoder.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                if tx.send(Ok((buf, n))).is_err() {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What [`next_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// The end of the stream, between frames.
    End,
    /// A whole frame that states its content size, at most [`MAX_FRAME`].
    Frame(usize),
    /// Anything else, for the streaming decoder; the bytes read are in the buffer.
    Other,
}

const ZSTD_MAGIC: u32 = 0xFD2F_B528;

const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// Reads the next frame into `buf` (cleared first), walking its header and block headers;
/// skippable frames are skipped. The format is RFC 8878, section 3.1.
pub(super) fn next_frame(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Next> {
    loop {
        buf.clear();
        if input.fill_buf()?.is_empty() {
            return Ok(Next::End);
        }
        let magic = u32::from_le_bytes(take::<4>(input, buf)?);
        if magic & 0xFFFF_FFF0 == SKIPPABLE_MAGIC {
            let size = u32::from_le_bytes(take::<4>(input, buf)?);
            let skipped = io::copy(&mut input.take(size.into()), &mut io::sink())?;
            if skipped < size.into() {
                return Err(truncated());
            }
            continue;
        }
        if magic != ZSTD_MAGIC {
            return Ok(Next::Other);
        }
        let [descriptor] = take::<1>(input, buf)?;
        let fcs_flag = descriptor >> 6;
        let single_segment = descriptor & 0x20 != 0;
        let checksum = descriptor & 0x04 != 0;
        let dictionary = descriptor & 0x03;
        // Reserved bit, a dictionary or no content size: not what the writer makes.
        if descriptor & 0x08 != 0 || dictionary != 0 || (fcs_flag == 0 && !single_segment) {
            return Ok(Next::Other);
        }
        if !single_segment {
            take::<1>(input, buf)?; // the window descriptor
        }
        let size = match fcs_flag {
            0 => u64::from(take::<1>(input, buf)?[0]),
            1 => u64::from(u16::from_le_bytes(take::<2>(input, buf)?)) + 256,
            2 => u64::from(u32::from_le_bytes(take::<4>(input, buf)?)),
            _ => u64::from_le_bytes(take::<8>(input, buf)?),
        };
        if size > MAX_FRAME as u64 {
            return Ok(Next::Other);
        }
        loop {
            let header = take::<3>(input, buf)?;
            let header = u32::from_le_bytes([header[0], header[1], header[2], 0]);
            let last = header & 1 != 0;
            let body = match (header >> 1) & 3 {
                1 => 1,                      // RLE: one byte, repeated
                3 => return Ok(Next::Other), // reserved: the decoder names the error
                _ => (header >> 3) as usize,
            };
            // No valid frame of at most MAX_FRAME bytes is this long: let the streaming
            // decoder, with its bounded window, find what is wrong.
            if buf.len() + body > zstd_safe::compress_bound(MAX_FRAME) {
                return Ok(Next::Other);
            }
            take_into(input, buf, body)?;
            if last {
                break;
            }
        }
        if checksum {
            take::<4>(input, buf)?;
        }
        return Ok(Next::Frame(size as usize));
    }
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the zstd stream ends inside a frame",
    )
}

/// Reads `N` bytes, appending them to `buf` too.
fn take<const N: usize>(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<[u8; N]> {
    let start = buf.len();
    take_into(input, buf, N)?;
    Ok(buf[start..].try_into().expect("N bytes were taken"))
}

/// Reads exactly `n` bytes, appending them to `buf`.
fn take_into(input: &mut impl BufRead, buf: &mut Vec<u8>, mut n: usize) -> io::Result<()> {
    while n > 0 {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Err(truncated());
        }
        let k = n.min(available.len());
        buf.extend_from_slice(&available[..k]);
        input.consume(k);
        n -= k;
    }
    Ok(())
}
