//! An archive file that reaches the disk while it is written, not only when it is committed.
//!
//! A snapshot is not visible before its archive is synced (see [`super::PendingArchive`]).
//! Synced only at the end, an archive of a few hundred megabytes leaves the run waiting on the
//! disk for the whole of it: about 0.4 s for 137 MB here, a sixth of a snapshot. So every
//! [`SYNC_EVERY`] bytes, a thread flushes what has been written so far (`fdatasync` on a
//! second handle of the same file) while the next bytes are compressed, and the final sync
//! finds only the last stretch left. The disk writes the same bytes either way; they are
//! written while the processor works instead of after.
//!
//! A failed background flush is kept and returned by [`ArchiveFile::finish`]: on Linux an
//! error of writeback is reported once per open file, so the final sync, on the same open
//! file, might not see it again.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

/// Bytes written between two background flushes.
pub const SYNC_EVERY: u64 = 16 << 20;

/// The file an archive is written into; see the module documentation.
#[derive(Debug)]
pub struct ArchiveFile {
    file: File,
    /// Bytes written since the last flush was asked for.
    unsynced: u64,
    syncer: Option<Syncer>,
}

/// The flushing thread and the way to wake it.
#[derive(Debug)]
struct Syncer {
    wake: SyncSender<()>,
    thread: JoinHandle<io::Result<()>>,
}

impl ArchiveFile {
    /// Wraps a file opened for writing. Without a second handle or a thread, the file is
    /// synced only by [`ArchiveFile::finish`].
    pub(super) fn new(file: File) -> ArchiveFile {
        let syncer = file
            .try_clone()
            .ok()
            .and_then(|clone| Syncer::spawn(move || clone.sync_data()));
        ArchiveFile {
            file,
            unsynced: 0,
            syncer,
        }
    }

    /// The file written into.
    #[cfg(test)]
    pub(super) fn get_ref(&self) -> &File {
        &self.file
    }

    /// Stops the flushing thread and syncs the whole file (data and metadata). Returns the
    /// first error of any flush, background ones included, and the file.
    pub(super) fn finish(mut self) -> io::Result<File> {
        if let Some(background) = self.stop() {
            background?;
        }
        self.file.sync_all()?;
        Ok(self.file)
    }

    /// Stops the flushing thread; its result, if there was one. (Dropped without `finish`,
    /// the file is about to be freed or removed: the thread ends after its current flush,
    /// unjoined, and its handle closes with it.)
    fn stop(&mut self) -> Option<io::Result<()>> {
        let Syncer { wake, thread } = self.syncer.take()?;
        drop(wake);
        Some(thread.join().unwrap_or_else(|_| {
            Err(io::Error::other(
                "the thread that syncs the archive panicked",
            ))
        }))
    }
}

impl Syncer {
    /// A thread that runs `flush` each time it is woken, until it fails or is stopped.
    fn spawn(mut flush: impl FnMut() -> io::Result<()> + Send + 'static) -> Option<Syncer> {
        // One pending request at most: a flush syncs everything written before it starts.
        let (wake, asked) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("agentbak-sync".into())
            .spawn(move || {
                for () in asked {
                    flush()?;
                }
                Ok(())
            })
            .ok()
            .map(|thread| Syncer { wake, thread })
    }
}

impl Write for ArchiveFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= SYNC_EVERY {
            if let Some(syncer) = &self.syncer {
                // When full, a flush already asked for will take these bytes too; when
                // disconnected, the thread stopped on an error, which `finish` returns.
                let _ = syncer.wake.try_send(());
            }
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_written_is_in_the_file_after_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        let mut out = ArchiveFile::new(File::create(&path).unwrap());
        assert!(out.syncer.is_some(), "a file handle can be cloned");
        let piece: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        let pieces = (2 * SYNC_EVERY / piece.len() as u64) + 3;
        for _ in 0..pieces {
            out.write_all(&piece).unwrap();
        }
        let file = out.finish().unwrap();
        let len = pieces * piece.len() as u64;
        assert_eq!(file.metadata().unwrap().len(), len);
        let back = std::fs::read(&path).unwrap();
        assert!(back.chunks(piece.len()).all(|c| c == piece.as_slice()));
    }

    #[test]
    fn a_failed_background_flush_fails_finish_though_the_final_sync_succeeds() {
        // On Linux a writeback error is reported once per open file: if the background flush
        // took it, the final sync would succeed. `finish` must still fail.
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("a")).unwrap();
        let mut out = ArchiveFile {
            file,
            unsynced: 0,
            syncer: Syncer::spawn(|| Err(io::Error::other("the disk is gone"))),
        };
        out.write_all(&vec![7; SYNC_EVERY as usize]).unwrap();
        let err = out.finish().unwrap_err();
        assert_eq!(err.to_string(), "the disk is gone");
    }
}
