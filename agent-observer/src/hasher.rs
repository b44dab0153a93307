//! Hashing changed files after close, on a worker thread so the event loop never waits on disk.

use std::{
    ffi::OsStr,
    fs::File,
    io::Read as _,
    os::unix::{
        ffi::OsStrExt as _,
        fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    sync::mpsc::{Receiver, Sender, channel},
    thread::JoinHandle,
};

use sha2::{Digest as _, Sha256};

use crate::correlate::{HashOutcome, HashRequest};

/// Hashes what is at `request.path` now: size, sha256, and whether it is still the inode that
/// was written.
pub fn hash(request: &HashRequest) -> HashOutcome {
    let path = OsStr::from_bytes(&request.path);
    // O_NOFOLLOW: a symlink put at the path since is not the file that was written;
    // O_NONBLOCK: never hang on a FIFO put there.
    let open = |p: &std::path::Path| {
        File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY).open(p)
    };
    // Through the writer's root first: in a container the path is relative to it.
    let in_root = std::path::PathBuf::from(format!("/proc/{}/root", request.pid)).join(
        std::path::Path::new(path).strip_prefix("/").unwrap_or(std::path::Path::new(path)),
    );
    let file = match (request.pid != 0).then(|| open(&in_root)) {
        Some(Ok(f)) => Ok(f),
        _ => open(std::path::Path::new(path)),
    };
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HashOutcome::Gone,
        Err(e) => return HashOutcome::Failed(e.to_string()),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return HashOutcome::Failed(e.to_string()),
    };
    if !meta.is_file() {
        return HashOutcome::Failed("not a regular file any more".into());
    }
    let same_inode = meta.ino() == request.ino && meta.dev() == request.dev;
    if meta.len() > request.max_bytes {
        return HashOutcome::TooLarge { size: meta.len() };
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                size += n as u64;
                if size > request.max_bytes {
                    // It grew while we read.
                    return HashOutcome::TooLarge { size };
                }
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return HashOutcome::Failed(e.to_string()),
        }
    }
    let mtime_ns = (meta.mtime().max(0) as u64) * 1_000_000_000 + meta.mtime_nsec().max(0) as u64;
    HashOutcome::Hashed { sha256: hasher.finalize().into(), size, same_inode, mtime_ns }
}

/// A worker thread answering hash requests in order.
pub struct Hasher {
    requests: Option<Sender<HashRequest>>,
    results: Receiver<(u64, HashOutcome)>,
    worker: Option<JoinHandle<()>>,
}

impl Hasher {
    pub fn start() -> std::io::Result<Hasher> {
        let (req_tx, req_rx) = channel::<HashRequest>();
        let (res_tx, res_rx) = channel();
        let worker = std::thread::Builder::new().name("hasher".into()).spawn(move || {
            for request in req_rx {
                let outcome = hash(&request);
                if res_tx.send((request.id, outcome)).is_err() {
                    break;
                }
            }
        })?;
        Ok(Hasher { requests: Some(req_tx), results: res_rx, worker: Some(worker) })
    }

    pub fn submit(&self, request: HashRequest) {
        if let Some(tx) = &self.requests {
            let _ = tx.send(request);
        }
    }

    /// Answers ready now.
    pub fn ready(&self) -> Vec<(u64, HashOutcome)> {
        self.results.try_iter().collect()
    }

    /// Waits for the answers to `n` outstanding requests.
    pub fn wait(&self, n: usize) -> Vec<(u64, HashOutcome)> {
        (0..n).map_while(|_| self.results.recv().ok()).collect()
    }
}

impl Drop for Hasher {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &std::path::Path, max: u64) -> HashRequest {
        let meta = std::fs::metadata(path).ok();
        HashRequest {
            id: 1,
            pid: 0,
            path: path.as_os_str().as_bytes().to_vec(),
            ino: meta.as_ref().map_or(0, |m| m.ino()),
            dev: meta.as_ref().map_or(0, |m| m.dev()),
            max_bytes: max,
        }
    }

    #[test]
    fn hashes_sizes_and_markers() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, b"hello\n").unwrap();
        let HashOutcome::Hashed { sha256, size, same_inode, .. } = hash(&request(&f, 100)) else { panic!() };
        assert_eq!(hex::encode(sha256), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
        assert_eq!((size, same_inode), (6, true));
        assert_eq!(hash(&request(&f, 3)), HashOutcome::TooLarge { size: 6 });
        let mut r = request(&f, 100);
        r.ino += 1;
        assert!(matches!(hash(&r), HashOutcome::Hashed { same_inode: false, .. }));
        std::fs::remove_file(&f).unwrap();
        assert_eq!(hash(&r), HashOutcome::Gone);
    }

    #[test]
    fn symlinks_and_fifos_are_not_followed_or_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(hash(&request(&link, 100)), HashOutcome::Failed(_)));
        let fifo = dir.path().join("p");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(hash(&request(&fifo, 100)), HashOutcome::Failed(_)));
    }
}
