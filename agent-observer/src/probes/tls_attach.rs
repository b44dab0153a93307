//! Attaching TLS uprobes to the files tracked processes run and load.
//!
//! Every executable a session execs and every file it maps executable is analysed (on a worker
//! thread: a 200 MB binary takes a fraction of a second) by [`super::tls::analyze`]. Where a
//! TLS library is found, `tls_enter`/`tls_exit` are attached to its write and read functions.
//! Uprobes belong to the file's inode, so each file is probed once and every process that maps
//! it is covered; the kernel programs keep only tracked processes.
//!
//! What was found per process is handed to the correlator as [`TlsCoverage`], so connections
//! whose plaintext was not captured can say why.

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        mpsc::{Receiver, Sender, channel},
    },
    thread::JoinHandle,
};

use agent_observer_common::tls as cookie;
use aya::{
    Ebpf,
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLink, UProbeScope},
    },
};

use super::tls::{Convention, Direction, Discovery, DiscoveryCache, TlsLibrary};
use crate::{
    intake::{TlsCoverage, TlsLibraryState, TlsProbeStatus},
    span::UnixNanos,
};

/// Identity of a file: uprobes are per inode.
pub type FileKey = (u64, u64);

enum Request {
    File { tgid: Option<u32>, path: PathBuf, shown: String },
    Process { tgid: u32 },
    /// Answered once everything asked before it is answered.
    Barrier(Sender<()>),
}

struct Answer {
    tgid: Option<u32>,
    path: PathBuf,
    shown: String,
    key: FileKey,
    result: Result<Arc<Discovery>, String>,
}

/// What happened to one file.
#[derive(Clone, Debug)]
struct FileState {
    library: Option<TlsLibrary>,
    status: Option<TlsProbeStatus>,
}

pub struct TlsProber {
    requests: Option<Sender<Request>>,
    answers: Receiver<Answer>,
    worker: Option<JoinHandle<()>>,
    files: HashMap<FileKey, FileState>,
    links: Vec<UProbeLink>,
    /// `struct pt_regs` offsets of the function-call argument registers.
    call_regs: [u32; 6],
    newly_known: Vec<FileKey>,
}

fn library_name(l: TlsLibrary) -> &'static str {
    match l {
        TlsLibrary::OpenSsl => "openssl",
        TlsLibrary::BoringSsl => "boringssl",
        TlsLibrary::GnuTls => "gnutls",
        TlsLibrary::Nss => "nss",
        TlsLibrary::Rustls => "rustls",
        TlsLibrary::GoCryptoTls => "go-crypto-tls",
        TlsLibrary::None => "none",
    }
}

fn library_id(l: TlsLibrary) -> u64 {
    u64::from(match l {
        TlsLibrary::OpenSsl => cookie::LIB_OPENSSL,
        TlsLibrary::BoringSsl => cookie::LIB_BORINGSSL,
        TlsLibrary::GnuTls => cookie::LIB_GNUTLS,
        TlsLibrary::Nss => cookie::LIB_NSS,
        _ => 0,
    })
}

/// Files a process maps executable, as the daemon can open them, with the process's own path.
fn mapped_files(tgid: u32) -> Vec<(PathBuf, String)> {
    let mut out = vec![(PathBuf::from(format!("/proc/{tgid}/exe")), String::new())];
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{tgid}/maps")) else { return out };
    let mut seen = HashSet::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (_, perms, _, _, _) = (fields.next(), fields.next(), fields.next(), fields.next(), fields.next());
        let path: String = fields.collect::<Vec<_>>().join(" ");
        if perms.is_some_and(|p| p.contains('x')) && path.starts_with('/') && !path.ends_with("(deleted)") && seen.insert(path.clone()) {
            out.push((PathBuf::from(format!("/proc/{tgid}/root{path}")), path));
        }
    }
    out
}

fn analyse(cache: &mut DiscoveryCache, tgid: Option<u32>, path: PathBuf, shown: String) -> Option<Answer> {
    let meta = std::fs::metadata(&path).ok()?;
    let key = (meta.dev(), meta.ino());
    let shown = if shown.is_empty() {
        std::fs::read_link(&path).map(|p| p.display().to_string()).unwrap_or_else(|_| path.display().to_string())
    } else {
        shown
    };
    let result = cache.analyze(&path).map_err(|e| e.to_string());
    Some(Answer { tgid, path, shown, key, result })
}

impl TlsProber {
    pub fn start(call_regs: [u32; 6]) -> std::io::Result<TlsProber> {
        let (req_tx, req_rx) = channel::<Request>();
        let (ans_tx, ans_rx) = channel();
        let worker = std::thread::Builder::new().name("tls-discovery".into()).spawn(move || {
            let mut cache = DiscoveryCache::new();
            // The same file keeps coming (every exec of /bin/sh...): answer each only once.
            let mut answered: HashSet<(Option<u32>, FileKey)> = HashSet::new();
            for request in req_rx {
                let files = match request {
                    Request::File { tgid, path, shown } => vec![(tgid, path, shown)],
                    Request::Process { tgid } => {
                        mapped_files(tgid).into_iter().map(|(p, s)| (Some(tgid), p, s)).collect()
                    }
                    Request::Barrier(done) => {
                        let _ = done.send(());
                        Vec::new()
                    }
                };
                for (tgid, path, shown) in files {
                    let Some(answer) = analyse(&mut cache, tgid, path, shown) else { continue };
                    if !answered.insert((answer.tgid, answer.key)) {
                        continue;
                    }
                    if ans_tx.send(answer).is_err() {
                        return;
                    }
                }
            }
        })?;
        Ok(TlsProber {
            requests: Some(req_tx),
            answers: ans_rx,
            worker: Some(worker),
            files: HashMap::new(),
            links: Vec::new(),
            call_regs,
            newly_known: Vec::new(),
        })
    }

    /// A file `tgid` runs or maps (a path in its mount namespace), or a system file (no tgid).
    pub fn request_file(&self, tgid: Option<u32>, path: &Path) {
        let (open, shown) = match tgid {
            Some(t) if path.is_absolute() => (PathBuf::from(format!("/proc/{t}/root{}", path.display())), path.display().to_string()),
            _ => (path.to_owned(), path.display().to_string()),
        };
        if let Some(tx) = &self.requests {
            let _ = tx.send(Request::File { tgid, path: open, shown });
        }
    }

    /// The executable a process runs now.
    pub fn request_exe(&self, tgid: u32) {
        if let Some(tx) = &self.requests {
            let _ = tx.send(Request::File { tgid: Some(tgid), path: PathBuf::from(format!("/proc/{tgid}/exe")), shown: String::new() });
        }
    }

    /// Everything a process maps executable now (for processes found already running).
    pub fn request_process(&self, tgid: u32) {
        if let Some(tx) = &self.requests {
            let _ = tx.send(Request::Process { tgid });
        }
    }

    /// Waits (up to `timeout`) until everything requested so far is analysed, then attaches it.
    pub fn settle(&mut self, ebpf: &mut Ebpf, now: UnixNanos, timeout: std::time::Duration) -> Vec<TlsCoverage> {
        let (tx, rx) = channel();
        if let Some(req) = &self.requests {
            let _ = req.send(Request::Barrier(tx));
            if rx.recv_timeout(timeout).is_err() {
                log::warn!("TLS discovery still busy after {timeout:?}; continuing");
            }
        }
        self.poll(ebpf, now)
    }

    /// Files analysed since last asked (stat dev, inode), for the kernel's `KNOWN_MAPS`.
    pub fn take_known(&mut self) -> Vec<FileKey> {
        std::mem::take(&mut self.newly_known)
    }

    /// Attaches for what the worker found since last time; returns what processes now cover.
    pub fn poll(&mut self, ebpf: &mut Ebpf, now: UnixNanos) -> Vec<TlsCoverage> {
        let mut coverage: HashMap<u32, Vec<TlsLibraryState>> = HashMap::new();
        while let Ok(answer) = self.answers.try_recv() {
            let state = self.settle_file(ebpf, &answer, now);
            if let (Some(tgid), Some(library), Some(status)) = (answer.tgid, state.library, state.status) {
                if library != TlsLibrary::None {
                    coverage.entry(tgid).or_default().push(TlsLibraryState {
                        library: library_name(library).to_owned(),
                        path: answer.shown.clone(),
                        status,
                    });
                }
            }
        }
        coverage.into_iter().map(|(tgid, libraries)| TlsCoverage { ts: now, tgid, libraries }).collect()
    }

    /// The file's state, attaching its probes the first time it is seen.
    fn settle_file(&mut self, ebpf: &mut Ebpf, answer: &Answer, now: UnixNanos) -> FileState {
        if let Some(state) = self.files.get(&answer.key) {
            return state.clone();
        }
        self.newly_known.push(answer.key);
        let state = match &answer.result {
            Err(e) => {
                log::debug!("tls discovery: {e}");
                FileState { library: None, status: None }
            }
            Ok(d) => {
                let library = d.library;
                let status = match library {
                    None | Some(TlsLibrary::None) => None,
                    Some(_) if d.points.is_empty() => Some(TlsProbeStatus::Unsupported),
                    Some(lib) => Some(match self.attach(ebpf, &answer.path, lib, d) {
                        Ok(n) => {
                            log::info!(
                                "TLS plaintext capture: {} ({}, {n} probes{})",
                                answer.shown,
                                library_name(lib),
                                d.version.as_deref().map(|v| format!(", {v}")).unwrap_or_default()
                            );
                            TlsProbeStatus::Attached(now)
                        }
                        Err(e) => {
                            log::warn!("cannot attach TLS probes to {}: {e:#}", answer.shown);
                            TlsProbeStatus::Failed(format!("{e:#}"))
                        }
                    }),
                };
                FileState { library, status }
            }
        };
        self.files.insert(answer.key, state.clone());
        state
    }

    fn attach(&mut self, ebpf: &mut Ebpf, path: &Path, library: TlsLibrary, d: &Discovery) -> anyhow::Result<usize> {
        let mut attached = 0;
        for point in &d.points {
            let mut c = library_id(library) << cookie::COOKIE_LIB_SHIFT;
            if point.direction == Direction::Recv {
                c |= cookie::COOKIE_RECV;
            }
            if let Convention::OutParam { arg } = point.convention {
                let reg = *self.call_regs.get(arg as usize).ok_or_else(|| anyhow::anyhow!("argument {arg} is not in a register"))?;
                c |= cookie::COOKIE_OUT_PARAM | u64::from(reg / 8) << cookie::COOKIE_OUT_REG_SHIFT;
            }
            for program in ["tls_enter", "tls_exit"] {
                let prog: &mut UProbe = ebpf
                    .program_mut(program)
                    .ok_or_else(|| anyhow::anyhow!("program {program} missing"))?
                    .try_into()?;
                let at = UProbeAttachPoint { location: UProbeAttachLocation::AbsoluteOffset(point.file_offset), cookie: Some(c) };
                let link = prog.attach(at, path, UProbeScope::AllProcesses)?;
                self.links.push(prog.take_link(link)?);
            }
            attached += 1;
        }
        Ok(attached)
    }

    /// Files probed so far, for tests and status.
    pub fn probed_files(&self) -> usize {
        self.files.values().filter(|f| matches!(f.status, Some(TlsProbeStatus::Attached(_)))).count()
    }
}

impl Drop for TlsProber {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        // Detach off the caller's thread: each waits for an RCU grace period.
        let links = std::mem::take(&mut self.links);
        std::thread::spawn(move || drop(links));
    }
}

/// TLS libraries worth probing before any session needs them: a short-lived process that loads
/// one and talks at once would otherwise run ahead of the probes. Only the common ones: every
/// probe costs an RCU grace period to detach (GnuTLS and NSS are probed when a session maps
/// them).
pub fn system_libraries() -> Vec<PathBuf> {
    let dirs = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib"];
    let names = ["libssl.so.3", "libssl.so.1.1"];
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for dir in dirs {
        for name in names {
            let p = Path::new(dir).join(name);
            if let Ok(meta) = std::fs::metadata(&p) {
                if seen.insert((meta.dev(), meta.ino())) {
                    out.push(p);
                }
            }
        }
    }
    // Interpreters agents run on, when they carry their own TLS (Node links OpenSSL statically).
    for exe in ["node", "nodejs", "bun", "deno"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(exe);
            if let Ok(meta) = std::fs::metadata(&p) {
                if seen.insert((meta.dev(), meta.ino())) {
                    out.push(p);
                }
                break;
            }
        }
    }
    out
}
