//! The daemon loop: probes → intake → correlator → sinks, and the few things it does in the
//! world on the correlator's behalf (tracking tgids, adopting running agents).

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::atomic::{AtomicI32, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{
    catalogue::Matcher,
    config::Config,
    correlate::{Correlator, FilesPolicy, Output, noise::{DEFAULT_NOISE, Noise, parse_passwd}},
    hasher::Hasher,
    decode::{Segment, stream::Reassembler},
    intake::{Event, clock::BootClock, ring::Intake, socks::OpenSockets, writes::{Counters, OpenWrites}},
    notify, procscan,
    probes::{Arming, SensorOptions, Sensors, tls_attach::{TlsProber, system_libraries}},
    redact::Redactor,
    sinks::{
        Fanout, Sink,
        console::ConsoleSink,
        otlp::{OtlpSink, Transport},
        otlp_json::FileSink,
        streams::{DebugView, StreamDump, StreamSink},
    },
    span::RandomIds,
    watch::{ChildStatus, HeldChild},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    Off,
    Stdout,
    Stderr,
}

#[derive(Debug)]
pub struct Options {
    pub config: Config,
    pub output_file: Option<PathBuf>,
    /// OTLP transport and endpoint override, when exporting.
    pub otlp: Option<(Transport, Option<String>)>,
    pub console: Console,
    pub ready_file: Option<PathBuf>,
    /// Adopt agents already running (off only for tests and `watch`).
    pub scan_proc: bool,
    pub ring_bytes: u32,
    /// Where to write counters (events, losses, spans) as JSON when the daemon stops.
    pub stats_file: Option<PathBuf>,
    /// When syscall capture (files, sockets) is attached.
    pub arming: Arming,
    /// Print the head of every captured plaintext segment (redacted) to stderr.
    pub debug_tls: bool,
    /// Write every captured stream's raw bytes here (content capture: opt-in).
    pub dump_streams: Option<PathBuf>,
}

/// Keep syscall capture armed this long after the last session ends (on-demand arming).
const DISARM_AFTER: Duration = Duration::from_secs(10);

/// What `watch` runs.
pub struct WatchTarget {
    pub argv: Vec<std::ffi::OsString>,
    pub name: Option<String>,
    /// How long to wait for descendants after the command itself exits.
    pub linger: Duration,
}

static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Exits with `code` once everything is flushed, without waiting for the kernel to detach the
/// probes: each detach waits for an RCU grace period and the kernel serialises them (seconds for
/// a few dozen probes in a VM). A child inherits the descriptors and lets go of them after the
/// daemon is gone; the probes it keeps alive meanwhile see no tracked process.
pub fn exit_now(code: i32) -> ! {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: the child only calls setsid and _exit; the parent only _exit.
    unsafe {
        if libc::fork() == 0 {
            libc::setsid();
            libc::_exit(0);
        }
        libc::_exit(code.clamp(0, 255));
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    STOP_SIGNAL.store(signal, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

fn build_sinks(options: &Options) -> anyhow::Result<Fanout> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    match options.console {
        Console::Stdout => sinks.push(Box::new(ConsoleSink::stdout())),
        Console::Stderr => sinks.push(Box::new(ConsoleSink::stderr())),
        Console::Off => {}
    }
    if let Some(path) = &options.output_file {
        sinks.push(Box::new(FileSink::create(path)?));
    }
    if let Some((transport, endpoint)) = &options.otlp {
        sinks.push(Box::new(OtlpSink::start(*transport, endpoint.as_deref())?));
    }
    Ok(Fanout::new(sinks))
}

/// Where `execvp` would find `program`.
fn which(program: &std::ffi::OsStr) -> Option<PathBuf> {
    let p = std::path::Path::new(program);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_owned());
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| std::path::Path::new(d).join(p)).find(|c| c.is_file())
}

fn build_stream_sinks(options: &Options) -> anyhow::Result<Vec<Box<dyn StreamSink>>> {
    let mut sinks: Vec<Box<dyn StreamSink>> = Vec::new();
    if options.debug_tls {
        sinks.push(Box::new(DebugView::new(Box::new(std::io::stderr()), Redactor::new(&options.config.redaction)?)));
    }
    if let Some(dir) = &options.dump_streams {
        sinks.push(Box::new(StreamDump::create(dir)?));
    }
    Ok(sinks)
}

struct Daemon {
    sensors: Sensors,
    intake: Intake,
    correlator: Correlator,
    sinks: Fanout,
    outputs: Vec<Output>,
    events: Vec<Event>,
    /// Kernel-tracked tgids unknown to the correlator at the last sweep.
    strangers: HashSet<u32>,
    /// tgid of the watched command's root, once its session ended.
    watch_root: Option<u32>,
    watch_root_ended: bool,
    events_seen: u64,
    spans_ended: u64,
    hasher: Hasher,
    /// Hash requests sent and not yet answered.
    hashing: usize,
    open_writes: OpenWrites,
    disarm_at: Option<Instant>,
    arming: Arming,
    reassembler: Reassembler,
    open_socks: OpenSockets,
    stream_sinks: Vec<Box<dyn StreamSink>>,
    prober: TlsProber,
}

fn files_policy(config: &Config) -> FilesPolicy {
    let patterns = config
        .files
        .noise_prefixes
        .clone()
        .unwrap_or_else(|| DEFAULT_NOISE.iter().map(|s| s.to_string()).collect());
    let homes = parse_passwd(&std::fs::read_to_string("/etc/passwd").unwrap_or_default());
    FilesPolicy { noise: Noise::new(patterns, homes), hash_max_bytes: config.files.hash_max_bytes }
}

/// Runs until SIGINT/SIGTERM, or until the watched command and its descendants are done.
/// Returns the exit code.
pub fn run(options: Options, watch: Option<WatchTarget>) -> anyhow::Result<i32> {
    let matcher = Matcher::new(&options.config)?;
    // `watch` follows only its own command, not every agent on the machine.
    let (candidate_comms, all_execs) =
        if watch.is_some() { Default::default() } else { matcher.candidate_comms() };
    let mut flags = agent_observer_common::CFG_FILES | agent_observer_common::CFG_NET;
    if all_execs {
        flags |= agent_observer_common::CFG_ALL_EXECS;
    }
    install_signal_handlers();
    let mut sensors = Sensors::load(&SensorOptions {
        flags,
        candidate_comms,
        ring_bytes: options.ring_bytes,
        arming: options.arming,
    })?;
    log::info!("{} probes attached", sensors.attached().len());
    // Loading parsed kernel BTF twice (ours and aya's); give that memory back.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    let intake = sensors.intake()?;
    let call_regs = sensors.call_regs();
    let correlator = Correlator::new(matcher, Redactor::new(&options.config.redaction)?, Box::new(RandomIds::new()))
        .with_files(files_policy(&options.config));
    let sinks = build_sinks(&options)?;
    let mut d = Daemon {
        sensors,
        intake,
        correlator,
        sinks,
        outputs: Vec::new(),
        events: Vec::new(),
        strangers: HashSet::new(),
        watch_root: None,
        watch_root_ended: false,
        events_seen: 0,
        spans_ended: 0,
        hasher: Hasher::start().context("cannot start the hashing thread")?,
        hashing: 0,
        open_writes: OpenWrites::default(),
        disarm_at: None,
        arming: options.arming,
        reassembler: Reassembler::default(),
        open_socks: OpenSockets::default(),
        stream_sinks: build_stream_sinks(&options)?,
        prober: TlsProber::start(call_regs).context("cannot start TLS discovery")?,
    };
    for lib in system_libraries() {
        d.prober.request_file(None, &lib);
    }
    // Probes on system TLS libraries are in place before anyone is told the daemon is ready.
    let coverage = d.prober.settle(d.sensors.ebpf_mut(), BootClock::now_unix(), Duration::from_secs(10));
    d.tls_covered(coverage);
    if options.arming == Arming::OnDemand {
        d.correlator.capture_disarmed();
    }
    if options.scan_proc {
        d.adopt_running();
    }
    if options.scan_proc {
        let _ = d.prober.settle(d.sensors.ebpf_mut(), BootClock::now_unix(), Duration::from_secs(10));
        d.attach_tls();
    }
    let mut child = match &watch {
        Some(target) => Some(d.start_watched(target)?),
        None => None,
    };
    notify::ready(options.ready_file.as_deref())?;
    let linger = watch.as_ref().map_or(Duration::ZERO, |w| w.linger);
    let code = d.run_loop(child.as_mut(), linger);
    d.finish();
    if let Some(path) = &options.stats_file {
        d.write_stats(path)?;
    }
    // Everything is flushed. Dropping the daemon would detach every probe, one RCU grace period
    // each; `exit_now` leaves that to the kernel after the process is gone.
    std::mem::forget(d);
    Ok(code)
}

impl Daemon {
    fn adopt_running(&mut self) {
        let clock = self.intake.clock();
        let scanned = procscan::scan(&clock);
        self.correlator.adopt(&scanned, std::process::id(), &mut self.outputs);
        self.apply();
        // Children forked between the scan and tracking their parent were missed by both:
        // the kernel tracks new forks only once the parent is tracked.
        let scanned = procscan::scan(&clock);
        self.correlator.adopt(&scanned, std::process::id(), &mut self.outputs);
        self.apply();
    }

    fn start_watched(&mut self, target: &WatchTarget) -> anyhow::Result<HeldChild> {
        // On-demand capture: arm before the command can do anything.
        self.sensors.arm()?;
        // Probe the command's own TLS library before it runs: a quick client would otherwise
        // finish before discovery of its binary does.
        if let Some(exe) = which(&target.argv[0]) {
            self.prober.request_file(None, &exe);
            let _ = self.prober.settle(self.sensors.ebpf_mut(), BootClock::now_unix(), Duration::from_secs(10));
        }
        let mut child = crate::watch::spawn_held(&target.argv)?;
        let name = target.name.clone().unwrap_or_else(|| {
            let argv0 = target.argv[0].to_string_lossy();
            crate::catalogue::basename(&argv0).to_owned()
        });
        self.correlator.expect_session(child.pid, &name);
        self.sensors.track(child.pid, child.pid).context("cannot track the watched command")?;
        self.watch_root = Some(child.pid);
        child.release()?;
        Ok(child)
    }

    fn run_loop(&mut self, mut child: Option<&mut HeldChild>, linger: Duration) -> i32 {
        let mut last_tick = Instant::now();
        let mut linger_until: Option<Instant> = None;
        let mut exit_code = 0;
        let mut forwarded = false;
        loop {
            let signal = STOP_SIGNAL.swap(0, Ordering::SeqCst);
            if signal != 0 {
                // Let the watched command react first; a second signal stops us.
                let running = child.as_deref_mut().is_some_and(|c| c.poll() == ChildStatus::Running);
                match child.as_deref() {
                    Some(c) if running && !forwarded => {
                        c.signal(signal);
                        forwarded = true;
                    }
                    _ => break,
                }
            }
            if let Err(e) = self.intake.wait(Duration::from_millis(25)) {
                log::error!("waiting for kernel events: {e}");
            }
            self.pump();
            self.attach_tls();
            self.correlator.tick(BootClock::now_unix(), &mut self.outputs);
            self.apply();
            self.collect_hashes();
            self.rearm();
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = Instant::now();
                self.tick();
            }
            if let Some(ChildStatus::Exited(code)) = child.as_deref_mut().map(HeldChild::poll) {
                exit_code = code;
                if self.watch_root_ended && self.correlator.live_processes() == 0 {
                    break;
                }
                // The root's exit record may still be in flight, and descendants may outlive
                // it: wait for them, but only for `linger`.
                let deadline = *linger_until.get_or_insert_with(|| Instant::now() + linger);
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
        exit_code
    }

    /// Drains ready records through the pipeline.
    fn pump(&mut self) {
        loop {
            self.events.clear();
            let n = self.intake.drain(&mut self.events, 4096);
            self.events_seen += self.events.len() as u64;
            let events: Vec<Event> = self.events.drain(..).collect();
            for event in events {
                self.process(event);
            }
            self.apply();
            if n < 4096 {
                break;
            }
        }
        self.sinks.flush();
        for sink in &mut self.stream_sinks {
            if let Err(e) = sink.flush() {
                log::error!("{e:#}");
            }
        }
    }

    /// One kernel event through the intake-side bookkeeping, the decoders and the correlator.
    fn process(&mut self, event: Event) {
        let clock = self.intake.clock();
        // An exit (or exec) closes files and sockets without syscalls: hand their closes on first.
        let sensors = &mut self.sensors;
        let mut before = self.open_writes.closes_before(
            &event,
            |tgid, file| {
                sensors.take_write(tgid, file).map(|s| Counters {
                    bytes: s.bytes,
                    writes: s.writes,
                    first_ns: s.first_ns,
                    last_ns: s.last_ns,
                })
            },
            |ns| clock.to_unix(ns),
        );
        let sensors = &mut self.sensors;
        before.extend(self.open_socks.closes_before(&event, |sk| {
            sensors.take_sock(sk).map(|s| crate::intake::record::sock_counters(&s, &clock))
        }));
        if let Event::Exit(x) = &event {
            for segment in self.reassembler.flush(Some(x.tgid)) {
                self.segment(segment);
            }
        }
        for close in before {
            self.correlator.handle(close, &mut self.outputs);
        }
        self.open_writes.observe(&event);
        self.open_socks.observe(&event);
        match event {
            Event::Data(chunk) => {
                for segment in self.reassembler.push(chunk) {
                    self.segment(segment);
                }
            }
            Event::ExecMap(m) => {
                if self.correlator.is_tracked(m.tgid) {
                    use std::os::unix::ffi::OsStrExt as _;
                    self.prober.request_file(Some(m.tgid), std::path::Path::new(std::ffi::OsStr::from_bytes(&m.path.bytes)));
                    // The process may call into a library it just mapped right away: attach now
                    // rather than after this batch (analysis of a library takes milliseconds).
                    let now = BootClock::now_unix();
                    let coverage = self.prober.settle(self.sensors.ebpf_mut(), now, Duration::from_millis(500));
                    self.tls_covered(coverage);
                }
            }
            event => {
                let exec = if let Event::Exec(e) = &event { Some(e.tgid) } else { None };
                self.correlator.handle(event, &mut self.outputs);
                if let Some(tgid) = exec.filter(|t| self.correlator.is_tracked(*t)) {
                    self.prober.request_exe(tgid);
                }
            }
        }
    }

    /// TLS probes the discovery worker made possible since last time.
    fn attach_tls(&mut self) {
        let now = BootClock::now_unix();
        let coverage = self.prober.poll(self.sensors.ebpf_mut(), now);
        self.tls_covered(coverage);
    }

    fn tls_covered(&mut self, coverage: Vec<crate::intake::TlsCoverage>) {
        for c in coverage {
            self.correlator.handle(Event::TlsCoverage(c), &mut self.outputs);
        }
        for (dev, ino) in self.prober.take_known() {
            self.sensors.file_known(dev, ino);
        }
    }

    fn segment(&mut self, segment: Segment) {
        if !self.stream_sinks.is_empty() {
            let label = self.correlator.stream_label(segment.tgid, segment.conn);
            for sink in &mut self.stream_sinks {
                sink.segment(&segment, &label);
            }
        }
        self.correlator.handle(Event::Segment(segment), &mut self.outputs);
    }

    fn apply(&mut self) {
        for output in self.outputs.drain(..) {
            match &output {
                Output::Track(tgid) => {
                    if let Err(e) = self.sensors.track(*tgid, *tgid) {
                        log::error!("cannot track {tgid}: {e}");
                    }
                    self.prober.request_process(*tgid);
                }
                Output::Untrack(tgid) => self.sensors.untrack(*tgid),
                Output::SessionEnded { root_tgid, .. } if Some(*root_tgid) == self.watch_root => {
                    self.watch_root_ended = true;
                }
                Output::SpanEnded { .. } => self.spans_ended += 1,
                Output::HashFile(request) => {
                    self.hasher.submit(request.clone());
                    self.hashing += 1;
                }
                _ => {}
            }
            self.sinks.dispatch(&output);
        }
    }

    /// Feeds finished hashes back to the correlator.
    fn collect_hashes(&mut self) {
        for (id, outcome) in self.hasher.ready() {
            self.hashing -= 1;
            self.correlator.hash_done(id, outcome, &mut self.outputs);
        }
        self.apply();
    }

    /// On-demand arming: syscall capture runs while any session is live, and a little after.
    fn rearm(&mut self) {
        if self.arming != Arming::OnDemand {
            return;
        }
        if self.correlator.live_sessions() > 0 {
            self.disarm_at = None;
            if !self.sensors.armed() {
                match self.sensors.arm() {
                    Ok(()) => self.correlator.capture_armed(BootClock::now_unix()),
                    Err(e) => log::error!("cannot arm syscall capture: {e}"),
                }
            }
        } else if self.sensors.armed() {
            let at = *self.disarm_at.get_or_insert_with(|| Instant::now() + DISARM_AFTER);
            if Instant::now() >= at {
                drop(self.sensors.disarm()); // detaches in the background
                self.correlator.capture_disarmed();
                self.disarm_at = None;
            }
        }
    }

    fn tick(&mut self) {
        let now = BootClock::now_unix();
        self.correlator.tick(now, &mut self.outputs);
        let losses = self.intake.losses();
        if losses.events_lost() > 0 {
            self.correlator.note_losses(losses.events_lost());
        }
        self.sweep();
        self.apply();
        self.intake.resync_clock();
    }

    /// Forgets kernel-tracked tgids the correlator does not know for two sweeps in a row
    /// (lost exec records, pid reuse): they would otherwise be tracked forever.
    fn sweep(&mut self) {
        let mut now_strangers = HashSet::new();
        for (tgid, _provisional) in self.sensors.tracked_tgids() {
            if self.correlator.is_tracked(tgid) || Some(tgid) == self.watch_root {
                continue;
            }
            if self.strangers.contains(&tgid) {
                self.sensors.untrack(tgid);
            } else {
                now_strangers.insert(tgid);
            }
        }
        self.strangers = now_strangers;
    }

    fn write_stats(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let l = self.intake.losses();
        let stats = serde_json::json!({
            "events": self.events_seen,
            "events_lost": l.events_lost(),
            "ring_full": l.ring_full,
            "pending_full": l.pending_full,
            "tracked_full": l.tracked_full,
            "undecodable": l.undecodable,
            "read_failed": l.read_failed,
            "writes_full": l.writes_full,
            "data_lost_bytes": l.data_lost_bytes,
            "spans_exported": self.spans_ended,
        });
        std::fs::write(path, serde_json::to_string(&stats)?)
            .with_context(|| format!("cannot write stats file {}", path.display()))
    }

    fn finish(&mut self) {
        self.pump();
        for segment in self.reassembler.flush(None) {
            self.segment(segment);
        }
        let losses = self.intake.losses();
        if losses.events_lost() > 0 {
            self.correlator.note_losses(losses.events_lost());
            log::warn!("kernel events lost: {losses:?}");
        }
        self.correlator.shutdown(BootClock::now_unix(), &mut self.outputs);
        self.apply();
        // Every held file span waits for its hash; answer them all before the last flush.
        while self.hashing > 0 {
            let done = self.hasher.wait(self.hashing);
            if done.is_empty() {
                break;
            }
            for (id, outcome) in done {
                self.hashing -= 1;
                self.correlator.hash_done(id, outcome, &mut self.outputs);
            }
            self.apply();
        }
        self.sinks.flush();
        if let Err(e) = self.sinks.shutdown() {
            log::error!("{e:#}");
        }
    }
}

