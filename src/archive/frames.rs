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

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use zeroize::Zeroizing;
use zstd::zstd_safe::{self, CCtx, CParameter, DCtx, DParameter};

/// Bytes of the tar stream per frame.
pub(crate) const FRAME: usize = 2 << 20;

/// Largest frame content the reader decompresses in one piece; a larger frame, or one that
/// does not state its size, goes to the streaming decoder.
const MAX_FRAME: usize = 2 * FRAME;

/// A buffer whose content may be a secret the leak gate has not yet seen: zeroed when dropped.
type Buf = Zeroizing<Vec<u8>>;

/// Work handed to a few threads, each with its own state; results come back in the order the
/// work was given.
///
/// Dropping it waits for the work in flight (so that its buffers are dropped, and zeroed, before
/// the caller goes on) and joins the threads.
struct Ordered<J, T> {
    jobs: Option<mpsc::Sender<(J, mpsc::SyncSender<io::Result<T>>)>>,
    pending: VecDeque<mpsc::Receiver<io::Result<T>>>,
    workers: Vec<JoinHandle<()>>,
}

impl<J: Send + 'static, T: Send + 'static> Ordered<J, T> {
    fn new<S: Send + 'static>(
        threads: usize,
        state: impl Fn() -> S,
        work: fn(&mut S, J) -> io::Result<T>,
    ) -> Self {
        let (jobs, queue) = mpsc::channel::<(J, mpsc::SyncSender<io::Result<T>>)>();
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads.max(1))
            .map(|_| {
                let queue = Arc::clone(&queue);
                let mut state = state();
                std::thread::spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let next = queue
                            .lock()
                            .map_err(|_| ())
                            .and_then(|q| q.recv().map_err(|_| ()));
                        let Ok((job, done)) = next else { return };
                        let _ = done.send(work(&mut state, job));
                    }
                })
            })
            .collect();
        Ordered {
            jobs: Some(jobs),
            pending: VecDeque::new(),
            workers,
        }
    }

    /// Jobs given and not yet taken back.
    fn len(&self) -> usize {
        self.pending.len()
    }

    fn submit(&mut self, job: J) {
        let (done, result) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().expect("jobs are closed only on drop");
        // The workers stop only when `jobs` is dropped; one that panicked drops `done`,
        // which `next` reports.
        let _ = jobs.send((job, done));
        self.pending.push_back(result);
    }

    /// The oldest job's result, waiting for it; `None` with no job in flight.
    fn next(&mut self) -> Option<io::Result<T>> {
        let result = self.pending.pop_front()?;
        Some(
            result
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("a zstd worker thread failed"))),
        )
    }

    /// The oldest job's result if it is ready.
    fn ready(&mut self) -> Option<io::Result<T>> {
        match self.pending.front()?.try_recv() {
            Err(mpsc::TryRecvError::Empty) => None,
            Ok(result) => {
                self.pending.pop_front();
                Some(result)
            }
            Err(mpsc::TryRecvError::Disconnected) => self.next(),
        }
    }
}

impl<J, T> Drop for Ordered<J, T> {
    fn drop(&mut self) {
        self.jobs = None;
        for result in self.pending.drain(..) {
            let _ = result.recv();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(zstd_safe::get_error_name(code))
}

/// A compression context set to `level`, with the content checksum.
fn compressor(level: i32) -> CCtx<'static> {
    let mut cctx = CCtx::create();
    // Both parameters take any value they are given here (levels are checked by the
    // manifest; out-of-range levels are clamped by zstd).
    let _ = cctx.set_parameter(CParameter::CompressionLevel(level));
    let _ = cctx.set_parameter(CParameter::ChecksumFlag(true));
    cctx
}

/// Compresses `input` into `out` as one frame (with its content size).
fn compress_frame(cctx: &mut CCtx<'static>, input: &[u8], out: &mut Buf) -> io::Result<()> {
    out.clear();
    out.reserve_exact(zstd_safe::compress_bound(input.len()));
    cctx.compress2(&mut **out, input).map_err(zstd_error)?;
    Ok(())
}

/// A compression job: the frame's input and a buffer for its output, both handed back.
type Compress = (Buf, Buf);

/// Writes zstd frames of [`FRAME`] input bytes each into `sink`, compressing them on `threads`
/// threads (on the caller's with 0).
///
/// At most `threads + 1` frames are compressed or wait to be written (so that a thread that
/// finishes finds the next frame ready), and one more is filled: with 2 threads, at most 4
/// inputs and 4 outputs of about 2 MiB each.
pub(crate) struct FrameEncoder<W: Write> {
    sink: W,
    /// The frame being filled: `frame[..filled]`. It is kept [`FRAME`] bytes long, so that
    /// files are read straight into it without zeroing it first.
    frame: Buf,
    filled: usize,
    /// The compressor for `threads == 0`, with its output buffer.
    inline: Option<(CCtx<'static>, Buf)>,
    pool: Option<Ordered<Compress, Compress>>,
    threads: usize,
    /// Buffers back from finished jobs.
    spare: Vec<Compress>,
    /// Whether a frame was written: an empty stream still gets one (empty) frame.
    started: bool,
}

impl<W: Write> FrameEncoder<W> {
    pub(crate) fn new(sink: W, level: i32, threads: u32) -> Self {
        let threads = threads as usize;
        let (inline, pool) = if threads == 0 {
            (Some((compressor(level), Buf::default())), None)
        } else {
            let work = |cctx: &mut CCtx<'static>, (input, mut out): Compress| {
                compress_frame(cctx, &input, &mut out).map(|()| (input, out))
            };
            (
                None,
                Some(Ordered::new(threads, move || compressor(level), work)),
            )
        };
        FrameEncoder {
            sink,
            frame: Buf::new(vec![0; FRAME]),
            filled: 0,
            inline,
            pool,
            threads,
            spare: Vec::new(),
            started: false,
        }
    }

    /// Compresses the frame being filled (or hands it to a thread).
    fn end_frame(&mut self) -> io::Result<()> {
        self.started = true;
        let filled = std::mem::take(&mut self.filled);
        if let Some((cctx, out)) = &mut self.inline {
            compress_frame(cctx, &self.frame[..filled], out)?;
            return self.sink.write_all(out);
        }
        let (mut next, out) = self.spare.pop().unwrap_or_default();
        // Only a buffer that held a shorter (last) frame, or a new one, is zeroed here.
        next.resize(FRAME, 0);
        let mut input = std::mem::replace(&mut self.frame, next);
        input.truncate(filled);
        let pool = self
            .pool
            .as_mut()
            .expect("a pool without an inline compressor");
        pool.submit((input, out));
        while pool.len() > self.threads + 1 {
            let done = pool.next().expect("jobs are in flight")?;
            write_frame(&mut self.sink, done, &mut self.spare)?;
        }
        while let Some(done) = pool.ready() {
            write_frame(&mut self.sink, done?, &mut self.spare)?;
        }
        Ok(())
    }

    /// Reads once from `reader` straight into the frame being filled, shows what was read to
    /// `observe`, and takes it into the stream; returns the bytes read (0 at its end).
    ///
    /// This is [`Write::write`] without the copy from a buffer of the caller's.
    pub(crate) fn write_from(
        &mut self,
        reader: &mut impl Read,
        observe: impl FnOnce(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        let room = &mut self.frame[self.filled..];
        let n = loop {
            match reader.read(room) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                read => break read?,
            }
        };
        observe(&self.frame[self.filled..self.filled + n])?;
        self.advance(n)?;
        Ok(n)
    }

    /// Takes `n` more bytes of the frame into the stream, ending the frame when it is full.
    fn advance(&mut self, n: usize) -> io::Result<()> {
        self.filled += n;
        if self.filled == FRAME {
            self.end_frame()?;
        }
        Ok(())
    }

    /// Compresses what is left and writes every frame; returns the sink (not flushed).
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if self.filled > 0 || !self.started {
            self.end_frame()?;
        }
        if let Some(pool) = &mut self.pool {
            while let Some(done) = pool.next() {
                write_frame(&mut self.sink, done?, &mut self.spare)?;
            }
        }
        Ok(self.sink)
    }
}

fn write_frame(
    sink: &mut impl Write,
    (input, out): Compress,
    spare: &mut Vec<Compress>,
) -> io::Result<()> {
    sink.write_all(&out)?;
    spare.push((input, out));
    Ok(())
}

impl<W: Write> Write for FrameEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(FRAME - self.filled);
        self.frame[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
        self.advance(n)?;
        Ok(n)
    }

    /// Flushes the sink only: a frame ends when it is full or the stream is finished.
    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

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
enum Next {
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
fn next_frame(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Next> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Text that compresses and bytes that do not, `len` of them.
    fn sample(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (data.len() / 65536) % 2 == 0 {
                data.extend_from_slice(format!("step={} ok\n", x % 100).as_bytes());
            } else {
                data.extend_from_slice(&x.to_le_bytes());
            }
        }
        data.truncate(len);
        data
    }

    fn encode(data: &[u8], threads: u32, write: usize) -> Vec<u8> {
        let mut encoder = FrameEncoder::new(Vec::new(), 3, threads);
        for chunk in data.chunks(write) {
            encoder.write_all(chunk).unwrap();
        }
        encoder.finish().unwrap()
    }

    /// Decodes with [`decode`] on `threads` threads, checking checksums.
    fn decode_all(stream: &[u8], threads: usize) -> io::Result<Vec<u8>> {
        decode_checked(stream, threads, true)
    }

    fn decode_checked(stream: &[u8], threads: usize, checksums: bool) -> io::Result<Vec<u8>> {
        let (tx, rx) = mpsc::sync_channel(2);
        let (_spare_tx, spare) = mpsc::sync_channel(1);
        std::thread::scope(|scope| {
            let collect = scope.spawn(move || {
                let mut out = Vec::new();
                for piece in rx {
                    let (buf, n): (Vec<u8>, usize) = piece?;
                    out.extend_from_slice(&buf[..n]);
                }
                Ok(out)
            });
            let ended = decode(stream, threads, checksums, &tx, &spare);
            drop(tx);
            let out = collect.join().unwrap();
            assert!(ended?, "the collector does not hang up");
            out
        })
    }

    /// The frames of a stream: (content size, compressed size) each.
    fn frames(mut stream: &[u8]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let mut buf = Vec::new();
        while let Next::Frame(size) = next_frame(&mut stream, &mut buf).unwrap() {
            found.push((size, buf.len()));
        }
        assert!(stream.is_empty(), "every frame states its size");
        found
    }

    #[test]
    fn every_length_round_trips_in_frames_of_frame_bytes() {
        for len in [0, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME + 12_345] {
            let data = sample(len);
            for threads in [0, 1, 2] {
                let stream = encode(&data, threads, 100_000);
                let sizes: Vec<usize> = frames(&stream).iter().map(|f| f.0).collect();
                let mut expected: Vec<usize> = data.chunks(FRAME).map(<[u8]>::len).collect();
                if expected.is_empty() {
                    expected.push(0); // an empty stream is one empty frame
                }
                assert_eq!(sizes, expected, "{len} bytes on {threads} threads");
                assert!(decode_all(&stream, 2).unwrap() == data, "{len} bytes");
                // Any zstd decoder reads the frames as one stream.
                assert!(
                    zstd::decode_all(stream.as_slice()).unwrap() == data,
                    "{len} bytes"
                );
            }
        }
    }

    #[test]
    fn the_frames_are_the_same_whatever_the_threads_and_writes() {
        let data = sample(2 * FRAME + 777);
        let one = encode(&data, 0, FRAME);
        assert_eq!(one, encode(&data, 2, 4096));
        assert_eq!(one, encode(&data, 3, 3 * FRAME));
    }

    #[test]
    fn other_frames_go_to_the_streaming_decoder_in_order() {
        let first = sample(FRAME + 10);
        let middle = sample(300_000);
        let last = sample(5000);
        let mut stream = encode(&first, 2, FRAME);
        // A frame without its content size (what a streaming encoder writes)...
        let mut streaming = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        streaming.write_all(&middle).unwrap();
        let streaming = streaming.finish().unwrap();
        assert_eq!(streaming[4] >> 6, 0, "no content size");
        stream.extend_from_slice(&streaming);
        // ...a skippable frame, and one of ours again.
        stream.extend_from_slice(&[0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        stream.extend_from_slice(&encode(&last, 0, FRAME));
        let expected = [first, middle, last].concat();
        assert!(decode_all(&stream, 2).unwrap() == expected);
        assert!(zstd::decode_all(stream.as_slice()).unwrap() == expected);
    }

    #[test]
    fn a_skippable_frame_between_frames_is_skipped() {
        let data = sample(FRAME + 3);
        let stream = encode(&data, 2, FRAME);
        let (one, two) = stream.split_at(frames(&stream)[0].1);
        let skipped = [&[0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9][..]].concat();
        let joined = [one, &skipped, two].concat();
        assert!(decode_all(&joined, 2).unwrap() == data);
    }

    #[test]
    fn damage_is_an_error_not_short_output() {
        let data = sample(2 * FRAME + 100);
        let stream = encode(&data, 2, FRAME);
        let first = frames(&stream)[0].1;
        // Cut inside the first frame, inside the second, and inside a frame header.
        for cut in [first / 2, first + 100, first + 2, stream.len() - 1] {
            let err = decode_all(&stream[..cut], 2).unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::UnexpectedEof,
                "cut at {cut}: {err}"
            );
        }
        // A flipped byte in a block (the checksum or the decoder catches it), in the content
        // size, and bytes that are not a frame after the last one.
        let mut flipped = stream.clone();
        flipped[first / 2] ^= 0x40;
        assert!(decode_all(&flipped, 2).is_err());
        let mut size = stream.clone();
        size[6] ^= 0x01; // the content size follows the magic, descriptor and window bytes
        assert!(decode_all(&size, 2).is_err());
        let mut trailing = stream.clone();
        trailing.extend_from_slice(b"not a frame");
        assert!(decode_all(&trailing, 2).is_err());
    }

    #[test]
    fn a_frame_that_states_a_huge_size_is_not_buffered() {
        // A header that claims 1 TiB: the frame goes to the streaming decoder, which fails
        // on the missing blocks without allocating for the claim.
        let mut stream = vec![0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x50];
        stream.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let mut buf = Vec::new();
        assert_eq!(
            next_frame(&mut stream.as_slice(), &mut buf).unwrap(),
            Next::Other
        );
        assert!(decode_all(&stream, 2).is_err());
    }

    #[test]
    fn checksums_are_checked_unless_the_caller_checks_the_whole_stream() {
        let data = sample(FRAME + 1000);
        let stream = encode(&data, 2, FRAME);
        let first = frames(&stream)[0].1;
        // The first frame's checksum is its last 4 bytes.
        let mut bad = stream.clone();
        bad[first - 2] ^= 0x10;
        let err = decode_checked(&bad, 2, true).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(decode_checked(&bad, 2, false).unwrap() == data);
        assert!(decode_checked(&stream, 2, false).unwrap() == data);
    }

    #[test]
    fn reading_into_the_frame_makes_the_same_frames_and_shows_every_byte_once() {
        let data = sample(2 * FRAME + 4321);
        let mut encoder = FrameEncoder::new(Vec::new(), 3, 2);
        let mut seen = Vec::new();
        // As the archive writer does: headers written, contents read into the frame.
        let mut source = &data[..];
        for k in 0.. {
            if source.is_empty() {
                break;
            }
            if k % 2 == 0 {
                let n = 1000.min(source.len());
                encoder.write_all(&source[..n]).unwrap();
                seen.extend_from_slice(&source[..n]);
                source = &source[n..];
            } else {
                let mut content = (&mut source).take(700_000);
                let mut observe = |piece: &[u8]| {
                    seen.extend_from_slice(piece);
                    Ok(())
                };
                while encoder.write_from(&mut content, &mut observe).unwrap() > 0 {}
            }
        }
        assert!(seen == data);
        assert_eq!(encoder.finish().unwrap(), encode(&data, 0, FRAME));
    }
}
