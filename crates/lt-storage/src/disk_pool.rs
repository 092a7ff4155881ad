//! [`DiskPool`]: disk I/O threads behind a bounded queue (libtorrent's `disk_io_thread`).

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use lt_core::{PieceIndex, Sha1Hash};

use crate::{Error, Storage};

/// Most jobs a disk thread takes from the queue at once, to coalesce contiguous writes.
const MAX_BATCH: usize = 64;

/// A request to the disk threads. `tag` is the caller's, returned in the [`Completion`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Job {
    /// Write `data` at `offset` of `piece`. The buffer comes back in the completion for reuse.
    Write {
        /// Caller's tag.
        tag: u64,
        /// The piece.
        piece: PieceIndex,
        /// Offset in the piece.
        offset: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Read `buf.len()` bytes at `offset` of `piece` into `buf`.
    Read {
        /// Caller's tag.
        tag: u64,
        /// The piece.
        piece: PieceIndex,
        /// Offset in the piece.
        offset: u32,
        /// Where to read to (its length is the read's length).
        buf: Vec<u8>,
    },
    /// SHA-1 a whole piece from disk.
    Hash {
        /// Caller's tag.
        tag: u64,
        /// The piece.
        piece: PieceIndex,
    },
}

impl Job {
    fn tag(&self) -> u64 {
        match self {
            Self::Write { tag, .. } | Self::Read { tag, .. } | Self::Hash { tag, .. } => *tag,
        }
    }
}

/// What a finished job produced.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// The write is done; here is the buffer back.
    Written(Vec<u8>),
    /// The bytes read.
    Read(Vec<u8>),
    /// The piece's SHA-1.
    Hashed(Sha1Hash),
}

/// A finished job.
#[derive(Debug)]
pub struct Completion {
    /// The job's tag.
    pub tag: u64,
    /// What it produced, or the disk error.
    pub result: Result<Output, Error>,
}

/// Why [`DiskPool::try_submit`] did not take a job.
#[derive(Debug)]
pub enum SubmitError {
    /// The queue is full: back-pressure. Stop reading from peers, drain completions and try
    /// again with the job handed back.
    Full(Job),
    /// The pool has stopped.
    Stopped(Job),
}

/// Disk threads serving one storage through a bounded queue.
///
/// The network side calls [`try_submit`](Self::try_submit), which never blocks: when the
/// queue is full it hands the job back ([`SubmitError::Full`]), and the caller stops reading
/// from sockets until completions drain. Each disk thread takes up to 64 queued jobs at a
/// time and writes runs of contiguous blocks of a piece with one [`Storage::write`] call.
/// Completions come back on a bounded channel too; a caller that never drains them stops the
/// disk threads, never grows memory.
#[derive(Debug)]
pub struct DiskPool {
    tx: Option<SyncSender<Job>>,
    done: Receiver<Completion>,
    leftover: std::collections::VecDeque<Completion>,
    threads: Vec<JoinHandle<()>>,
}

impl DiskPool {
    /// Starts `threads` disk threads (at least one) with a queue of `queue_depth` jobs.
    ///
    /// # Errors
    /// [`Error::Io`] when a thread cannot be spawned.
    pub fn new(
        storage: Arc<dyn Storage>,
        threads: usize,
        queue_depth: usize,
    ) -> Result<Self, Error> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(queue_depth.max(1));
        let (done_tx, done) =
            mpsc::sync_channel::<Completion>(queue_depth.max(1) + threads * MAX_BATCH);
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::with_capacity(threads);
        for n in 0..threads {
            let rx = Arc::clone(&rx);
            let done_tx = done_tx.clone();
            let storage = Arc::clone(&storage);
            let h = std::thread::Builder::new()
                .name(format!("lt-disk-{n}"))
                .spawn(move || worker(&*storage, &rx, &done_tx))
                .map_err(|e| Error::io(crate::Operation::Open, "lt-disk thread", e))?;
            handles.push(h);
        }
        Ok(Self {
            tx: Some(tx),
            done,
            leftover: std::collections::VecDeque::new(),
            threads: handles,
        })
    }

    /// Queues a job without blocking.
    ///
    /// # Errors
    /// [`SubmitError::Full`] (back-pressure) or [`SubmitError::Stopped`], with the job.
    pub fn try_submit(&self, job: Job) -> Result<(), SubmitError> {
        let Some(tx) = &self.tx else {
            return Err(SubmitError::Stopped(job));
        };
        tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(j) => SubmitError::Full(j),
            TrySendError::Disconnected(j) => SubmitError::Stopped(j),
        })
    }

    /// Queues a job, waiting while the queue is full (for callers off the network threads).
    ///
    /// # Errors
    /// [`Error::PoolStopped`].
    pub fn submit(&self, job: Job) -> Result<(), Error> {
        self.tx
            .as_ref()
            .ok_or(Error::PoolStopped)?
            .send(job)
            .map_err(|_| Error::PoolStopped)
    }

    /// A finished job, if one is ready.
    #[must_use]
    pub fn try_completion(&mut self) -> Option<Completion> {
        if let Some(c) = self.leftover.pop_front() {
            return Some(c);
        }
        self.done.try_recv().ok()
    }

    /// Waits up to `timeout` for a finished job.
    #[must_use]
    pub fn wait_completion(&mut self, timeout: Duration) -> Option<Completion> {
        if let Some(c) = self.leftover.pop_front() {
            return Some(c);
        }
        self.done.recv_timeout(timeout).ok()
    }

    /// Stops taking jobs, finishes the queued ones and joins the threads. Completions of
    /// the queued jobs stay readable with [`try_completion`](Self::try_completion).
    pub fn shutdown(&mut self) {
        self.tx = None;
        // Drain while joining so no worker blocks on a full completion channel.
        while self.threads.iter().any(|t| !t.is_finished()) {
            if let Ok(c) = self.done.recv_timeout(Duration::from_millis(1)) {
                self.leftover.push_back(c);
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        while let Ok(c) = self.done.try_recv() {
            self.leftover.push_back(c);
        }
    }
}

impl Drop for DiskPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker(storage: &dyn Storage, rx: &Mutex<Receiver<Job>>, done: &SyncSender<Completion>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            match rx.recv() {
                Ok(j) => batch.push(j),
                Err(_) => return,
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
        }
        if run_batch(storage, &mut batch, done).is_err() {
            return;
        }
    }
}

/// Runs a batch: writes sorted and coalesced into runs of contiguous blocks, then the rest.
fn run_batch(
    storage: &dyn Storage,
    batch: &mut Vec<Job>,
    done: &SyncSender<Completion>,
) -> Result<(), mpsc::SendError<Completion>> {
    batch.sort_by_key(|j| match j {
        Job::Write { piece, offset, .. } => (0u8, piece.get(), *offset),
        _ => (1, 0, 0),
    });
    let mut jobs = std::mem::take(batch).into_iter().peekable();
    while let Some(job) = jobs.next() {
        match job {
            Job::Write {
                tag,
                piece,
                offset,
                data,
            } => {
                let mut run = vec![(tag, offset, data)];
                while let Some(Job::Write {
                    piece: p,
                    offset: o,
                    ..
                }) = jobs.peek()
                {
                    let (_, last_off, last) = &run[run.len() - 1];
                    let contiguous =
                        *p == piece && u64::from(*o) == u64::from(*last_off) + last.len() as u64;
                    if !contiguous {
                        break;
                    }
                    if let Some(Job::Write {
                        tag, offset, data, ..
                    }) = jobs.next()
                    {
                        run.push((tag, offset, data));
                    }
                }
                let bufs: Vec<&[u8]> = run.iter().map(|(_, _, d)| d.as_slice()).collect();
                let res = storage.write(piece, offset, &bufs);
                drop(bufs);
                if res.is_ok() {
                    for (tag, _, data) in run {
                        done.send(Completion {
                            tag,
                            result: Ok(Output::Written(data)),
                        })?;
                    }
                } else {
                    // Retry one by one so each job gets its own error.
                    for (tag, off, data) in run {
                        let result = storage
                            .write(piece, off, &[&data])
                            .map(|()| Output::Written(data));
                        done.send(Completion { tag, result })?;
                    }
                }
            }
            Job::Read {
                tag,
                piece,
                offset,
                mut buf,
            } => {
                let result = storage
                    .read(piece, offset, &mut buf)
                    .map(|()| Output::Read(buf));
                done.send(Completion { tag, result })?;
            }
            Job::Hash { tag, piece } => {
                let mut buf = Vec::new();
                let result = storage.hash_piece(piece, &mut buf).map(Output::Hashed);
                done.send(Completion { tag, result })?;
            }
        }
    }
    Ok(())
}

impl Job {
    /// The tag the caller gave the job.
    #[must_use]
    pub fn job_tag(&self) -> u64 {
        self.tag()
    }
}
