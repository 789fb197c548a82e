//! Writing: the tar stream cut into frames of [`FRAME`] bytes, compressed on a few threads.
//!
//! Invariants: every frame but the last holds exactly [`FRAME`] bytes of input, and states
//! its content size and checksum; the frames are the same whatever the threads and however
//! the input is written (the archive's bytes depend only on its content); every buffer is a
//! [`Buf`], zeroed when dropped, since the gate may not have seen its bytes yet.

use std::io::{self, Read, Write};

use zstd::zstd_safe::{self, CCtx, CParameter};

use super::ordered::Ordered;
use super::{Buf, FRAME, zstd_error};

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
