//! The `agent-observer` command line.

use std::{ffi::OsString, path::PathBuf, process::ExitCode, time::Duration};

use agent_observer::{
    catalogue::CATALOGUE,
    config::{Config, SyscallCapture},
    probes::Arming,
    daemon::{self, Console, Options, WatchTarget},
    sinks::otlp::{self, Transport},
};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "agent-observer", version, about = "Observe AI coding agents with eBPF and export their sessions as OpenTelemetry traces.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: detect agent sessions machine-wide and trace them.
    Run(Output),
    /// Run CMD as an agent session, whatever its name, and exit with its exit code.
    Watch {
        #[command(flatten)]
        output: Output,
        /// Agent name for the session (default: the command's basename).
        #[arg(long)]
        name: Option<String>,
        /// Milliseconds to wait for the command's descendants after it exits.
        #[arg(long, default_value_t = 500)]
        linger_ms: u64,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
    /// List the built-in agent catalogue.
    Agents,
    /// Show which TLS stack a binary or library carries and where plaintext would be captured.
    TlsDiscover {
        /// Executables or shared libraries.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check a configuration file and exit.
    CheckConfig { path: PathBuf },
}

#[derive(Args)]
struct Output {
    /// Configuration file (TOML).
    #[arg(long, short, env = "AGENT_OBSERVER_CONFIG")]
    config: Option<PathBuf>,
    /// Append OTLP/JSON (one ExportTraceServiceRequest per line) to this file.
    #[arg(long)]
    output_file: Option<PathBuf>,
    /// Export over OTLP (also enabled by OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT).
    #[arg(long)]
    otlp: bool,
    /// OTLP endpoint; overrides OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT.
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf`; overrides OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL.
    #[arg(long)]
    otlp_protocol: Option<String>,
    /// Do not print the live session view.
    #[arg(long)]
    quiet: bool,
    /// Create this file once every probe is attached.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Do not adopt agents that are already running.
    #[arg(long)]
    no_proc_scan: bool,
    /// Kernel ring buffer size in MiB. It is mapped twice, so it counts double in RSS.
    #[arg(long, default_value_t = 8)]
    ring_mib: u32,
    /// Write event, loss and span counters as JSON here when stopping.
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// `always` (default) or `on-demand`: attach file/socket capture only while a session is
    /// live. Overrides `[capture] syscalls`.
    #[arg(long)]
    syscall_capture: Option<String>,
    /// Print the head of every captured plaintext segment (secrets redacted) to stderr.
    #[arg(long)]
    debug_tls: bool,
    /// Write every captured plaintext stream, raw and unredacted, into this directory. This
    /// is content capture: only for debugging, on data you may keep.
    #[arg(long)]
    dump_streams: Option<PathBuf>,
}

impl Output {
    fn options(self, console: Console) -> anyhow::Result<Options> {
        let config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let config_arming = config.capture.syscalls;
        let otlp = if self.otlp || self.otlp_endpoint.is_some() || otlp::enabled_by_env() {
            Some((Transport::resolve(self.otlp_protocol.as_deref())?, self.otlp_endpoint))
        } else {
            None
        };
        Ok(Options {
            config,
            output_file: self.output_file,
            otlp,
            console: if self.quiet { Console::Off } else { console },
            ready_file: self.ready_file,
            scan_proc: !self.no_proc_scan,
            ring_bytes: self.ring_mib.clamp(1, 1024) << 20,
            stats_file: self.stats_file,
            arming: match (self.syscall_capture.as_deref(), config_arming) {
                (Some("on-demand"), _) | (None, SyscallCapture::OnDemand) => Arming::OnDemand,
                (Some("always"), _) | (None, SyscallCapture::Always) => Arming::Always,
                (Some(other), _) => anyhow::bail!("--syscall-capture: `{other}` is not `always` or `on-demand`"),
            },
            debug_tls: self.debug_tls,
            dump_streams: self.dump_streams,
        })
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let daemon = matches!(cli.command, Command::Run(_) | Command::Watch { .. });
    match run(cli) {
        Ok(code) if daemon => agent_observer::daemon::exit_now(code),
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("agent-observer: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(output) => daemon::run(output.options(Console::Stdout)?, None),
        Command::Watch { output, name, linger_ms, command } => {
            let mut options = output.options(Console::Stderr)?;
            options.scan_proc = false;
            let target = WatchTarget { argv: command, name, linger: Duration::from_millis(linger_ms) };
            daemon::run(options, Some(target))
        }
        Command::Agents => {
            for agent in CATALOGUE {
                println!("{:<16} executables: {}", agent.name, agent.exe_names.join(", "));
            }
            Ok(0)
        }
        Command::TlsDiscover { files } => {
            let mut failed = false;
            for file in files {
                let start = std::time::Instant::now();
                match agent_observer::probes::tls::analyze(&file) {
                    Ok(d) => {
                        let library = d.library.map_or("none".to_owned(), |l| format!("{l:?}"));
                        println!(
                            "{}: {library}{} in {:.1} ms",
                            file.display(),
                            d.version.map(|v| format!(" ({v})")).unwrap_or_default(),
                            start.elapsed().as_secs_f64() * 1e3
                        );
                        for p in &d.points {
                            println!(
                                "  {:<22} file offset {:#x}  {:?} {:?} via {:?}",
                                p.function, p.file_offset, p.direction, p.convention, p.method
                            );
                        }
                        for note in &d.notes {
                            println!("  note: {note}");
                        }
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
        Command::CheckConfig { path } => {
            Config::load(&path)?;
            println!("{}: ok", path.display());
            Ok(0)
        }
    }
}
