//! Probes: loading the kernel programs and attaching them, one module per hook family.
//!
//! Every program is attached at start-up or the daemon refuses to start: a probe that did not
//! load is an error with the kernel's reason, never a silent gap.
//!
//! # Kernel requirements
//! - BTF at `/sys/kernel/btf/vmlinux` (struct offsets are read from it);
//! - tracepoints (`sched`, `syscalls`) and raw tracepoints; tracefs is mounted if missing;
//! - BPF ring buffers (5.8+);
//! - root, or CAP_BPF + CAP_PERFMON (+ CAP_SYS_RESOURCE on old kernels).

pub mod btf;
pub mod offsets;
pub mod process;
pub mod syscalls;
pub mod tls;
pub mod tls_attach;

use std::{borrow::Cow, collections::BTreeSet, path::Path};

use agent_observer_common::{CommKey, KernelConfig, SyscallSpec, TRACK_PROVISIONAL, Tracked, WriteKey, WriteStats};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::{RawTracePoint, TracePoint, UProbe, trace_point::TracePointLink},
};
pub use syscalls::Arming;
use thiserror::Error;

use crate::intake::ring::Intake;

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error(
        "agent-observer needs root (or CAP_BPF and CAP_PERFMON) to load its eBPF programs; \
         this process has neither. Run it with sudo, or grant the capabilities."
    )]
    NotPrivileged,
    #[error("cannot read kernel type information (BTF): {0}")]
    Btf(String),
    #[error("tracefs is not mounted at /sys/kernel/tracing and mounting it failed: {0}")]
    Tracefs(std::io::Error),
    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] aya::EbpfError),
    #[error("program `{program}` is missing from the eBPF object")]
    MissingProgram { program: &'static str },
    #[error("map `{0}` is missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("cannot load program `{program}`: {source}")]
    ProgramLoad { program: &'static str, #[source] source: aya::programs::ProgramError },
    #[error("cannot attach program `{program}` to {hook}: {source}")]
    Attach { program: &'static str, hook: String, #[source] source: aya::programs::ProgramError },
    #[error("map `{map}`: {source}")]
    Map { map: &'static str, #[source] source: aya::maps::MapError },
}

/// Where a program attaches.
#[derive(Clone, Debug)]
pub enum Hook {
    /// A tracepoint `category/name`.
    Tracepoint(&'static str, Cow<'static, str>),
    /// A raw tracepoint.
    Raw(&'static str),
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hook::Tracepoint(c, n) => write!(f, "tracepoint {c}:{n}"),
            Hook::Raw(n) => write!(f, "raw tracepoint {n}"),
        }
    }
}

/// The loaded kernel side. Dropping it detaches every program.
pub struct Sensors {
    ebpf: Ebpf,
    tracked: BpfHashMap<MapData, u32, Tracked>,
    writes: BpfHashMap<MapData, WriteKey, WriteStats>,
    socks: BpfHashMap<MapData, u64, agent_observer_common::SockStats>,
    known_maps: BpfHashMap<MapData, agent_observer_common::InodeKey, u8>,
    /// Held open: the kernel empties a program array once no user-space fd refers to it.
    _continue: [ProgramArray<MapData>; 2],
    /// Owned so they can be detached off the event loop: each waits for an RCU grace period.
    syscall_links: Vec<TracePointLink>,
    attached: Vec<(&'static str, Hook)>,
    /// `struct pt_regs` offsets of the function-call argument registers, for TLS probes.
    call_regs: [u32; 6],
}

#[derive(Clone, Debug, Default)]
pub struct SensorOptions {
    /// `CFG_*` flags.
    pub flags: u32,
    /// Comms whose execs are reported while untracked.
    pub candidate_comms: BTreeSet<String>,
    /// Ring buffer size in bytes (a power of two).
    pub ring_bytes: u32,
    /// When syscall capture (files, sockets) is attached.
    pub arming: Arming,
}

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-observer"));

impl Sensors {
    pub fn load(options: &SensorOptions) -> Result<Sensors, ProbeError> {
        check_privileges()?;
        ensure_tracefs()?;
        raise_memlock();
        let btf = btf::Btf::from_sys_fs().map_err(|e| ProbeError::Btf(format!("{e:#}")))?;
        let offsets = offsets::resolve(&btf).map_err(|e| ProbeError::Btf(e.to_string()))?;
        let config = KernelConfig {
            offsets,
            flags: options.flags,
            self_tgid: std::process::id(),
            fmode_created: FMODE_CREATED,
            _pad: 0,
        };
        let ring = options.ring_bytes.max(1 << 20).next_power_of_two();
        let mut ebpf = EbpfLoader::new()
            .override_global("CONFIG", &config, true)
            .map_max_entries("EVENTS", ring)
            .load(OBJECT)
            .map_err(|e| match &e {
                aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. })
                    if io_error.raw_os_error() == Some(libc::EPERM) =>
                {
                    ProbeError::NotPrivileged
                }
                _ => ProbeError::Load(e),
            })?;

        let mut candidates: BpfHashMap<MapData, CommKey, u8> = take_map(&mut ebpf, "CANDIDATES")?;
        for comm in &options.candidate_comms {
            candidates
                .insert(comm_key(comm), 1, 0)
                .map_err(|source| ProbeError::Map { map: "CANDIDATES", source })?;
        }
        let tracked = take_map(&mut ebpf, "TRACKED")?;
        let writes = take_map(&mut ebpf, "WRITES")?;
        let socks = take_map(&mut ebpf, "SOCKS")?;
        let known_maps = take_map(&mut ebpf, "KNOWN_MAPS")?;
        let regs = offsets::regs_args(&btf).map_err(|e| ProbeError::Btf(e.to_string()))?;
        let call_regs = offsets::call_regs(&btf).map_err(|e| ProbeError::Btf(e.to_string()))?;
        load_syscall_handlers(&mut ebpf, &regs)?;
        let cont = load_continuations(&mut ebpf)?;
        for program in ["tls_enter", "tls_exit"] {
            let prog = ebpf.program_mut(program).ok_or(ProbeError::MissingProgram { program })?;
            let p: &mut UProbe = prog.try_into().map_err(|source| ProbeError::ProgramLoad { program, source })?;
            p.load().map_err(|source| ProbeError::ProgramLoad { program, source })?;
        }
        let mut sensors = Sensors {
            ebpf,
            tracked,
            writes,
            socks,
            known_maps,
            _continue: cont,
            syscall_links: Vec::new(),
            attached: Vec::new(),
            call_regs,
        };
        for (program, hook) in process::PROGRAMS {
            sensors.attach(program, hook.clone())?;
        }
        if options.arming == Arming::Always {
            sensors.arm()?;
        }
        Ok(sensors)
    }

    /// Attaches every syscall handler to its syscalls' tracepoints (idempotent). A syscall this
    /// kernel does not have (no tracepoint) cannot be called, so it is skipped.
    pub fn arm(&mut self) -> Result<(), ProbeError> {
        if !self.syscall_links.is_empty() {
            return Ok(());
        }
        for (_, name, handler, _) in syscalls::TABLE.iter().filter(|(_, _, h, _)| *h != syscalls::Handler::Layout) {
            let program = handler.program();
            let tracepoint = handler.tracepoint(name);
            if !tracepoint_exists("syscalls", &tracepoint) {
                log::debug!("no tracepoint syscalls:{tracepoint} on this kernel");
                continue;
            }
            let hook = Hook::Tracepoint("syscalls", Cow::Owned(tracepoint.clone()));
            let prog = self.ebpf.program_mut(program).ok_or(ProbeError::MissingProgram { program })?;
            let attach_err = |source| ProbeError::Attach { program, hook: hook.to_string(), source };
            let tp: &mut TracePoint = prog.try_into().map_err(attach_err)?;
            let link = tp.attach("syscalls", &tracepoint).map_err(attach_err)?;
            let link = tp.take_link(link).map_err(attach_err)?;
            self.syscall_links.push(link);
            self.attached.push((program, hook));
        }
        for (program, tracepoint) in syscalls::SOCK_DATA {
            let hook = Hook::Tracepoint("sock", Cow::Borrowed(tracepoint));
            let prog = self.ebpf.program_mut(program).ok_or(ProbeError::MissingProgram { program })?;
            let attach_err = |source| ProbeError::Attach { program, hook: hook.to_string(), source };
            let tp: &mut TracePoint = prog.try_into().map_err(attach_err)?;
            let link = tp.attach("sock", tracepoint).map_err(attach_err)?;
            self.syscall_links.push(tp.take_link(link).map_err(attach_err)?);
            self.attached.push((program, hook));
        }
        Ok(())
    }

    /// Detaches the syscall handlers: other processes stop paying for them. Each detach waits
    /// for an RCU grace period (tens of ms in a VM) and the kernel serialises them, so this runs
    /// on its own thread; the returned handle finishes it.
    pub fn disarm(&mut self) -> std::thread::JoinHandle<()> {
        let links = std::mem::take(&mut self.syscall_links);
        self.attached.retain(|(_, hook)| !matches!(hook, Hook::Tracepoint("syscalls" | "sock", _)));
        std::thread::spawn(move || drop(links))
    }

    pub fn armed(&self) -> bool {
        !self.syscall_links.is_empty()
    }

    /// Tells the kernel a file (stat(2) dev and inode) is analysed: its mappings need no report.
    pub fn file_known(&mut self, dev: u64, ino: u64) {
        // The kernel's dev_t is major << 20 | minor.
        let kdev = (libc::major(dev) << 20) | libc::minor(dev);
        let _ = self.known_maps.insert(agent_observer_common::InodeKey { ino, dev: kdev, _pad: 0 }, 1, 0);
    }

    /// Removes and returns the kernel's counters of one connection.
    pub fn take_sock(&mut self, sk: u64) -> Option<agent_observer_common::SockStats> {
        let stats = self.socks.get(&sk, 0).ok();
        let _ = self.socks.remove(&sk);
        stats
    }

    pub fn call_regs(&self) -> [u32; 6] {
        self.call_regs
    }

    /// The loaded eBPF object, for sensors that attach later (TLS uprobes).
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Removes and returns the kernel's counters of one write episode.
    pub fn take_write(&mut self, tgid: u32, file: u64) -> Option<WriteStats> {
        let key = WriteKey { tgid, _pad: 0, file };
        let stats = self.writes.get(&key, 0).ok();
        let _ = self.writes.remove(&key);
        stats
    }

    fn attach(&mut self, program: &'static str, hook: Hook) -> Result<(), ProbeError> {
        let prog = self.ebpf.program_mut(program).ok_or(ProbeError::MissingProgram { program })?;
        let attach_err = |source| ProbeError::Attach { program, hook: hook.to_string(), source };
        match &hook {
            Hook::Tracepoint(category, name) => {
                let tp: &mut TracePoint = prog.try_into().map_err(attach_err)?;
                tp.load().map_err(|source| ProbeError::ProgramLoad { program, source })?;
                tp.attach(category, name).map_err(attach_err)?;
            }
            Hook::Raw(name) => {
                let tp: &mut RawTracePoint = prog.try_into().map_err(attach_err)?;
                tp.load().map_err(|source| ProbeError::ProgramLoad { program, source })?;
                tp.attach(name).map_err(attach_err)?;
            }
        }
        self.attached.push((program, hook));
        Ok(())
    }

    /// Every attached program and where, for `--list-probes` and start-up logs.
    pub fn attached(&self) -> &[(&'static str, Hook)] {
        &self.attached
    }

    /// Starts tracking `tgid` as (part of) a confirmed session rooted at `root`.
    pub fn track(&mut self, tgid: u32, root: u32) -> Result<(), ProbeError> {
        self.tracked
            .insert(tgid, Tracked { root_tgid: root, flags: 0 }, 0)
            .map_err(|source| ProbeError::Map { map: "TRACKED", source })
    }

    pub fn untrack(&mut self, tgid: u32) {
        let _ = self.tracked.remove(&tgid);
    }

    /// tgids the kernel tracks, with whether they are still provisional.
    pub fn tracked_tgids(&self) -> Vec<(u32, bool)> {
        self.tracked
            .iter()
            .filter_map(Result::ok)
            .map(|(tgid, t)| (tgid, t.flags & TRACK_PROVISIONAL != 0))
            .collect()
    }

    /// Hands the ring buffer and loss counters to the intake stage.
    pub fn intake(&mut self) -> Result<Intake, ProbeError> {
        let ring: RingBuf<MapData> = take_map(&mut self.ebpf, "EVENTS")?;
        let stats: PerCpuArray<MapData, u64> = take_map(&mut self.ebpf, "STATS")?;
        Ok(Intake::new(ring, stats))
    }
}


/// `file->f_mode` bit set when an open created the file (include/linux/fs.h, stable since 4.19).
const FMODE_CREATED: u32 = crate::intake::record::FMODE_CREATED;

/// Loads every syscall handler and gives the kernel each syscall's argument layout.
fn load_syscall_handlers(ebpf: &mut Ebpf, regs: &[u32; 6]) -> Result<(), ProbeError> {
    let mut specs: Array<MapData, SyscallSpec> = take_map(ebpf, "SPECS")?;
    let programs = syscalls::HANDLERS.iter().map(|h| h.program()).chain(syscalls::SOCK_DATA.iter().map(|(p, _)| *p));
    for program in programs {
        let prog = ebpf.program_mut(program).ok_or(ProbeError::MissingProgram { program })?;
        let tp: &mut TracePoint = prog.try_into().map_err(|source| ProbeError::ProgramLoad { program, source })?;
        tp.load().map_err(|source| ProbeError::ProgramLoad { program, source })?;
    }
    for (nr, _, _, layout) in syscalls::TABLE {
        specs.set(*nr, layout.to_spec(regs), 0).map_err(|source| ProbeError::Map { map: "SPECS", source })?;
    }
    Ok(())
}

/// Loads the programs tail-called to continue long transfers and registers each in its program
/// array (one per program type: the kernel ties an array to the first type that uses it).
fn load_continuations(ebpf: &mut Ebpf) -> Result<[ProgramArray<MapData>; 2], ProbeError> {
    let mut tables = Vec::new();
    for (map, program) in [("SOCK_CONTINUE", "sock_more"), ("TLS_CONTINUE", "tls_more")] {
        let mut table: ProgramArray<MapData> = take_map(ebpf, map)?;
        let prog = ebpf.program_mut(program).ok_or(ProbeError::MissingProgram { program })?;
        let load_err = |source| ProbeError::ProgramLoad { program, source };
        match prog {
            aya::programs::Program::TracePoint(p) => p.load().map_err(load_err)?,
            aya::programs::Program::UProbe(p) => p.load().map_err(load_err)?,
            _ => return Err(ProbeError::MissingProgram { program }),
        }
        let fd = ebpf.program(program).ok_or(ProbeError::MissingProgram { program })?.fd().map_err(load_err)?;
        table.set(0, fd, 0).map_err(|source| ProbeError::Map { map, source })?;
        tables.push(table);
    }
    let [sock, tls]: [ProgramArray<MapData>; 2] = tables.try_into().map_err(|_| ProbeError::MissingMap("CONTINUE"))?;
    Ok([sock, tls])
}

fn tracepoint_exists(category: &str, name: &str) -> bool {
    ["/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"]
        .iter()
        .any(|root| Path::new(root).join(category).join(name).exists())
}

fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProbeError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(ProbeError::MissingMap(name))?;
    T::try_from(map).map_err(|source| ProbeError::Map { map: name, source })
}

pub fn comm_key(comm: &str) -> CommKey {
    let mut key = [0u8; 16];
    let bytes = comm.as_bytes();
    let n = bytes.len().min(15);
    key[..n].copy_from_slice(&bytes[..n]);
    key
}

/// Fails early, with advice, when the process cannot load BPF programs at all.
fn check_privileges() -> Result<(), ProbeError> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        Ok(())
    } else {
        Err(ProbeError::NotPrivileged)
    }
}

/// Mounts tracefs where aya looks for tracepoint ids, if it is not there.
fn ensure_tracefs() -> Result<(), ProbeError> {
    let root = Path::new("/sys/kernel/tracing");
    if root.join("events").exists() || Path::new("/sys/kernel/debug/tracing/events").exists() {
        return Ok(());
    }
    let cstr = |s: &str| std::ffi::CString::new(s).expect("no NUL");
    let (src, target, fstype) = (cstr("nodev"), cstr("/sys/kernel/tracing"), cstr("tracefs"));
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(ProbeError::Tracefs(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Pre-5.11 kernels charge BPF memory to RLIMIT_MEMLOCK.
fn raise_memlock() {
    let limit = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: valid rlimit struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) };
}
