//! Writing chunks into packs: compressed on a few threads, appended to unnamed pack files,
//! named at commit.
//!
//! Invariants:
//! - Memory is bounded whatever the number of chunks: at most `8 * threads` chunks (each at
//!   most [`MAX_RAW_LENGTH`] bytes) are compressed or wait to be appended; beyond the chunk
//!   data, the writer keeps 32 bytes per chunk id seen and one [`Blob`] per blob written.
//! - Blobs are appended in the order their compression ends (packs need no order: the index
//!   file says where each blob is).
//! - Every buffer that held a chunk's bytes is zeroed when dropped: the leak gate may not
//!   have passed them yet.
//! - A pack is closed (its age stream finished, its blake3 taken) once it holds
//!   [`PackWriter::target`] bytes of blobs; a thread syncs closed packs while the next ones
//!   are written.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use zstd::zstd_safe::{self, CCtx, CParameter};

use super::{
    Blob, ChunkId, MAX_RAW_LENGTH, PACK_TARGET, PackInfo, hex, make_dirs, write_index_file,
};
use crate::archive::{HashingWriter, Recipients};
use crate::error::{Error, Result};
use crate::repo::pending::{ALL_LINKS, ClosedFile, Expect, HiddenFile, Way};
use crate::repo::sync_dir;

/// Chunks in flight per compressing thread: enough that the thread cutting and hashing and the
/// compressing threads rarely wait for each other, at most 8 MiB of chunk data per thread.
/// With 2 per thread the first snapshot of `scripts/bench-snapshot.sh` (502 MiB) took
/// 1.45–1.47 s, with 8 1.36–1.39 s (the two builds alternated, 2026-12-05).
const IN_FLIGHT_PER_THREAD: usize = 8;

/// What a writer did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Chunks added (each id once).
    pub chunks: u64,
    /// Their raw bytes.
    pub raw_bytes: u64,
    /// Bytes of blobs written (compressed, before any encryption).
    pub stored_bytes: u64,
    /// Packs closed or open.
    pub packs: u64,
}

/// A chunk's bytes, or its blob: zeroed when dropped (the leak gate may not have passed
/// them yet). With a plain fill, which compiles to a `memset`, not `zeroize`'s volatile byte
/// stores, which never do: in the debug build the tests run, zeroize took 1.0 s of the 2.3 s
/// that writing 256 MiB of chunks took on one thread. `black_box` keeps the compiler from
/// dropping the stores to memory about to be freed.
struct Wiped(Vec<u8>);

impl Drop for Wiped {
    fn drop(&mut self) {
        // Its spare capacity never held a chunk's bytes: zstd writes its output in order, and
        // a caller's buffer holds its chunk in `len`.
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

impl std::ops::Deref for Wiped {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

/// A compressed chunk: its id, raw length and blob (or why compression failed).
type Compressed = (ChunkId, u32, io::Result<Wiped>);

/// Writes new chunks into packs; nothing is readable under a name until
/// [`PendingPacks::commit`]. See the module documentation of `packs` for crashes.
pub struct PackWriter<'r> {
    root: PathBuf,
    tmp: PathBuf,
    recipients: Option<&'r Recipients>,
    level: i32,
    /// Bytes of blobs after which a pack is closed ([`PACK_TARGET`]; tests set less).
    pub(crate) target: u64,
    /// How pack files are hidden until commit (tests ask for [`Way::Sealed`]).
    pub(crate) way: Way,
    seen: HashSet<ChunkId>,
    compress: Compress,
    open: Option<OpenPack>,
    closer: Closer,
    stats: WriterStats,
}

/// Where chunks are compressed.
enum Compress {
    /// On the caller's thread (`threads == 0`).
    Inline(Box<CCtx<'static>>),
    /// On worker threads.
    Pool(Pool),
}

/// The pack being filled.
struct OpenPack {
    sink: Sink,
    written: u64,
    blobs: Vec<Blob>,
}

/// The bytes of a pack, plain or age-encrypted, counted and hashed as stored.
enum Sink {
    Plain(HashingWriter<HiddenFile>),
    Age(age::stream::StreamWriter<HashingWriter<HiddenFile>>),
}

impl Sink {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(out) => out.write_all(bytes),
            Sink::Age(out) => out.write_all(bytes),
        }
    }

    /// Ends the age stream; the file, its size and its blake3.
    fn end(self) -> io::Result<(HiddenFile, u64, [u8; 32])> {
        let hashed = match self {
            Sink::Plain(out) => out,
            Sink::Age(out) => out.finish()?,
        };
        Ok(hashed.into_parts())
    }
}

impl<'r> PackWriter<'r> {
    /// A writer into the repository at `root` (its `tmp/`, `packs/` and `index/` are made
    /// when missing). Packs are age-encrypted to `recipients` when given; chunks are
    /// compressed at zstd `level` on `threads` threads (on the caller's with 0).
    pub fn new(
        root: &Path,
        recipients: Option<&'r Recipients>,
        level: i32,
        threads: u32,
    ) -> Result<PackWriter<'r>> {
        make_dirs(root, &["packs", "index"])?;
        let compress = if threads == 0 {
            Compress::Inline(Box::new(compressor(level)))
        } else {
            Compress::Pool(Pool::new(threads as usize, level))
        };
        Ok(PackWriter {
            root: root.to_path_buf(),
            tmp: root.join("tmp"),
            recipients,
            level,
            target: PACK_TARGET,
            way: Way::Unnamed,
            seen: HashSet::new(),
            compress,
            open: None,
            closer: Closer::spawn(root.join("tmp")),
            stats: WriterStats::default(),
        })
    }

    /// Compresses `raw` as one zstd frame (content size and checksum set, at the writer's
    /// level), on a worker thread, and appends it to the open pack. A chunk whose id was
    /// already added to this writer is ignored (the caller checks the repository's index
    /// itself). Blocks while `8 * threads` chunks are in flight. A chunk over
    /// [`MAX_RAW_LENGTH`] bytes is refused.
    pub fn add(&mut self, id: ChunkId, raw: Vec<u8>) -> Result<()> {
        let raw = Wiped(raw);
        let raw_length = match u32::try_from(raw.len()) {
            Ok(n) if n <= MAX_RAW_LENGTH => n,
            _ => {
                return Err(Error::Entry {
                    path: hex(&id),
                    reason: format!(
                        "a chunk of {} bytes, more than the largest a pack holds \
                         ({MAX_RAW_LENGTH})",
                        raw.len()
                    ),
                });
            }
        };
        if !self.seen.insert(id) {
            return Ok(());
        }
        self.stats.chunks += 1;
        self.stats.raw_bytes += u64::from(raw_length);
        match &mut self.compress {
            Compress::Inline(cctx) => {
                let blob = compress_chunk(cctx, &raw);
                drop(raw);
                self.append((id, raw_length, blob))
            }
            Compress::Pool(pool) => {
                let mut done = Vec::new();
                pool.submit(id, raw, &mut done);
                for compressed in done {
                    self.append(compressed)?;
                }
                Ok(())
            }
        }
    }

    /// What was written so far: chunks still being compressed are not counted yet. For the
    /// totals of a run, [`PendingPacks::stats`] after [`PackWriter::finish`] (two counts taken
    /// here were too low: a sidecar's `stored` and prune's `bytes_written`).
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// The zstd level chunks are compressed at.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Appends a compressed chunk to the open pack (opening one if none is), and closes the
    /// pack once it holds [`PackWriter::target`] bytes.
    fn append(&mut self, (id, raw_length, blob): Compressed) -> Result<()> {
        let blob = blob.map_err(|e| Error::io(&self.tmp, e))?;
        let length = u32::try_from(blob.len()).expect("a compressed chunk is a few MiB at most");
        if self.open.is_none() {
            self.open = Some(self.open_pack()?);
        }
        let open = self.open.as_mut().expect("opened above");
        open.sink.put(&blob).map_err(|e| Error::io(&self.tmp, e))?;
        open.blobs.push(Blob {
            id,
            offset: open.written,
            length,
            raw_length,
        });
        open.written += u64::from(length);
        self.stats.stored_bytes += u64::from(length);
        if open.written >= self.target {
            self.close_pack()?;
        }
        Ok(())
    }

    /// A new, hidden pack file.
    fn open_pack(&mut self) -> Result<OpenPack> {
        let mut label = [0u8; 8];
        getrandom::fill(&mut label)
            .map_err(|e| Error::io(&self.tmp, io::Error::other(e.to_string())))?;
        let file = HiddenFile::create(
            &self.tmp,
            &format!("pack-{}", crate::archive::hex(&label)),
            self.way,
        )?;
        let hashed = HashingWriter::new(file);
        let sink = match self.recipients {
            None => Sink::Plain(hashed),
            Some(recipients) => age::Encryptor::with_recipients(recipients.as_dyn())
                .map_err(|e| Error::Recipient {
                    recipient: String::new(),
                    reason: e.to_string(),
                })
                .and_then(|to| {
                    let stream = to.wrap_output(hashed);
                    stream.map_err(|e| Error::io(&self.tmp, e))
                })
                .map(Sink::Age)?,
        };
        self.stats.packs += 1;
        raise_file_limit(self.stats.packs);
        Ok(OpenPack {
            sink,
            written: 0,
            blobs: Vec::new(),
        })
    }

    /// Ends the open pack and hands it to the thread that syncs closed packs.
    fn close_pack(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let (file, size, blake3) = open.sink.end().map_err(|e| Error::io(&self.tmp, e))?;
        let info = PackInfo {
            id: hex(&blake3),
            size,
            encrypted: self.recipients.is_some(),
            blobs: open.blobs,
        };
        self.closer.close(file, info)
    }

    /// Compresses and appends the chunks still in flight, closes the last pack and waits for
    /// every pack to be synced; returns them, still unnamed, for [`PendingPacks::commit`].
    pub fn finish(mut self) -> Result<PendingPacks> {
        if let Compress::Pool(pool) = &mut self.compress {
            let mut done = Vec::new();
            pool.drain(&mut done);
            for compressed in done {
                self.append(compressed)?;
            }
        }
        self.close_pack()?;
        let closed = self.closer.finish()?;
        let (files, infos) = closed.into_iter().unzip();
        Ok(PendingPacks {
            root: std::mem::take(&mut self.root),
            files,
            infos,
            stats: self.stats,
        })
    }
}

impl std::fmt::Debug for PackWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackWriter")
            .field("root", &self.root)
            .field("encrypted", &self.recipients.is_some())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Packs written and synced, not yet named: dropped, they leave nothing readable.
pub struct PendingPacks {
    root: PathBuf,
    files: Vec<ClosedFile>,
    infos: Vec<PackInfo>,
    stats: WriterStats,
}

impl PendingPacks {
    /// The packs, as the index file will list them.
    pub fn infos(&self) -> &[PackInfo] {
        &self.infos
    }

    /// What the writer did, every chunk included (the writer's [`PackWriter::stats`] may
    /// miss chunks still being compressed).
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Links every pack to `packs/<2 hex>/<id>[.age]` (never replacing a file; one already
    /// there with the same id holds the same bytes and is taken as is), syncs the folders,
    /// then writes `index/<index_name>.json` (see [`write_index_file`]). Returns the packs.
    /// With no packs, no index file is written.
    pub fn commit(self, index_name: &str) -> Result<Vec<PackInfo>> {
        let PendingPacks {
            root, files, infos, ..
        } = self;
        if infos.is_empty() {
            return Ok(infos);
        }
        let packs = root.join("packs");
        let mut dirs = Vec::new();
        for (file, info) in files.into_iter().zip(&infos) {
            let target = info.path(&root);
            let dir = target.parent().expect("a pack has a folder").to_path_buf();
            if !dirs.contains(&dir) {
                // Made durable with the sync of `packs/` below.
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| Error::io(&dir, e))?;
                dirs.push(dir);
            }
            let expect = Expect {
                name: &info.id,
                promised_by: "the pack id",
                size: info.size,
                blake3: &info.id,
                existing_ok: true,
            };
            file.place(&target, &expect, ALL_LINKS)?;
        }
        for dir in dirs.iter().chain(std::iter::once(&packs)) {
            sync_dir(dir)?;
        }
        write_index_file(&root, index_name, &infos)?;
        Ok(infos)
    }
}

impl std::fmt::Debug for PendingPacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingPacks")
            .field("root", &self.root)
            .field("packs", &self.infos.len())
            .finish()
    }
}

/// A compression context at `level`, with the content checksum (and, as `compress2` knows
/// the input's size, the content size).
fn compressor(level: i32) -> CCtx<'static> {
    let mut cctx = CCtx::create();
    // Levels are checked by the manifest; zstd clamps any other.
    let _ = cctx.set_parameter(CParameter::CompressionLevel(level));
    let _ = cctx.set_parameter(CParameter::ChecksumFlag(true));
    let _ = cctx.set_parameter(CParameter::ContentSizeFlag(true));
    cctx
}

/// One chunk as one zstd frame.
fn compress_chunk(cctx: &mut CCtx<'static>, raw: &[u8]) -> io::Result<Wiped> {
    let mut blob = Wiped(Vec::with_capacity(zstd_safe::compress_bound(raw.len())));
    cctx.compress2(&mut blob.0, raw)
        .map_err(|code| io::Error::other(zstd_safe::get_error_name(code)))?;
    Ok(blob)
}

/// Threads that compress chunks, handing blobs back as they are done (in any order).
struct Pool {
    jobs: Option<mpsc::Sender<(ChunkId, Wiped)>>,
    done: mpsc::Receiver<Compressed>,
    workers: Vec<JoinHandle<()>>,
    /// Chunks given and not yet taken back.
    in_flight: usize,
    /// The most chunks in flight ([`IN_FLIGHT_PER_THREAD`] per thread), so that a thread that
    /// finishes finds the next chunk waiting.
    limit: usize,
}

impl Pool {
    fn new(threads: usize, level: i32) -> Pool {
        let (jobs, queue) = mpsc::channel::<(ChunkId, Wiped)>();
        let (results, done) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads)
            .map(|_| {
                let queue = Arc::clone(&queue);
                let results = results.clone();
                std::thread::spawn(move || {
                    let mut cctx = compressor(level);
                    // The queue is locked only while a job is taken.
                    while let Ok((id, raw)) = queue
                        .lock()
                        .map_err(drop)
                        .and_then(|q| q.recv().map_err(drop))
                    {
                        let blob = compress_chunk(&mut cctx, &raw);
                        let raw_length = raw.len() as u32;
                        drop(raw);
                        if results.send((id, raw_length, blob)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Pool {
            jobs: Some(jobs),
            done,
            workers,
            in_flight: 0,
            limit: IN_FLIGHT_PER_THREAD * threads,
        }
    }

    /// Gives a chunk to the threads, first waiting until fewer than `limit` are in flight;
    /// pushes onto `done` every blob finished meanwhile.
    fn submit(&mut self, id: ChunkId, raw: Wiped, done: &mut Vec<Compressed>) {
        while self.in_flight >= self.limit {
            done.push(self.wait());
        }
        let jobs = self.jobs.as_ref().expect("jobs close only on drop");
        // A worker that panicked shows as a missing result in `wait`.
        let _ = jobs.send((id, raw));
        self.in_flight += 1;
        while let Ok(compressed) = self.done.try_recv() {
            self.in_flight -= 1;
            done.push(compressed);
        }
    }

    /// Waits for every chunk in flight; pushes their blobs onto `done`.
    fn drain(&mut self, done: &mut Vec<Compressed>) {
        while self.in_flight > 0 {
            done.push(self.wait());
        }
    }

    fn wait(&mut self) -> Compressed {
        self.in_flight -= 1;
        self.done.recv().unwrap_or_else(|_| {
            let failed = io::Error::other("a zstd worker thread failed");
            ([0; 32], 0, Err(failed))
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue stops the workers once their chunk is done; joining them means
        // no chunk outlives the writer.
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// A pack synced, waiting for its name.
type Synced = (ClosedFile, PackInfo);

/// The thread that syncs closed packs (so that the next pack is written meanwhile).
struct Closer {
    /// `tmp/`, to name in errors.
    tmp: PathBuf,
    packs: Option<mpsc::SyncSender<(HiddenFile, PackInfo)>>,
    thread: Option<JoinHandle<Result<Vec<Synced>>>>,
}

impl Closer {
    fn spawn(tmp: PathBuf) -> Closer {
        // Two closed packs may wait: past that, writing waits for the disk.
        let (packs, closed) = mpsc::sync_channel::<(HiddenFile, PackInfo)>(2);
        let thread = std::thread::spawn(move || {
            let mut synced = Vec::new();
            for (file, info) in closed {
                synced.push((file.close()?, info));
            }
            Ok(synced)
        });
        Closer {
            tmp,
            packs: Some(packs),
            thread: Some(thread),
        }
    }

    fn close(&mut self, file: HiddenFile, info: PackInfo) -> Result<()> {
        let packs = self.packs.as_ref().expect("open until finish");
        if packs.send((file, info)).is_err() {
            // The thread stopped on an error, which `finish` returns.
            let stopped = io::Error::other("the packs' sync thread stopped");
            return self
                .finish()
                .and_then(|_| Err(Error::io(&self.tmp, stopped)));
        }
        Ok(())
    }

    /// Waits for every pack to be synced; the first error otherwise.
    fn finish(&mut self) -> Result<Vec<Synced>> {
        self.packs = None;
        let failed = |why: &str| Error::io(&self.tmp, io::Error::other(why.to_string()));
        let thread = self
            .thread
            .take()
            .ok_or_else(|| failed("the packs' sync thread already failed"))?;
        thread
            .join()
            .unwrap_or_else(|_| Err(failed("the packs' sync thread panicked")))
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.packs = None;
        if let Some(thread) = self.thread.take() {
            // Its packs are dropped with its result: nothing is left readable.
            let _ = thread.join();
        }
    }
}

/// Each pending pack holds a descriptor until commit: past a few hundred, raise the soft
/// limit on open files to the hard one (as Go's runtime does at start), once.
fn raise_file_limit(packs: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    if packs != 256 {
        return;
    }
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "could not raise the open files limit");
        }
    }
}
