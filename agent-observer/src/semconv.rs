//! Attribute keys and span names, in one place so `docs/spans.md` can be checked against them.
//!
//! Standard OpenTelemetry keys where one exists; ours live under `agent_observer.`.

pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
pub const GEN_AI_AGENT_NAME: &str = "gen_ai.agent.name";

pub const PROCESS_PID: &str = "process.pid";
pub const PROCESS_PARENT_PID: &str = "process.parent_pid";
pub const PROCESS_EXECUTABLE_PATH: &str = "process.executable.path";
pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
pub const PROCESS_COMMAND_ARGS: &str = "process.command_args";
pub const PROCESS_WORKING_DIRECTORY: &str = "process.working_directory";
pub const PROCESS_EXIT_CODE: &str = "process.exit.code";
pub const USER_ID: &str = "user.id";

/// Name of the signal that killed the process, e.g. `SIGKILL`.
pub const EXIT_SIGNAL: &str = "agent_observer.process.exit.signal";
pub const EXIT_SIGNAL_NUMBER: &str = "agent_observer.process.exit.signal_number";
pub const EXIT_CORE_DUMPED: &str = "agent_observer.process.exit.core_dumped";
/// The image was replaced by another exec before the process exited.
pub const REPLACED_BY_EXEC: &str = "agent_observer.process.replaced_by_exec";
pub const ARGV_TRUNCATED: &str = "agent_observer.process.command_args_truncated";
/// An agent from the catalogue started inside another agent's session.
pub const NESTED_AGENT: &str = "agent_observer.nested_agent";
/// The span was still open when the daemon stopped or lost track of the process.
pub const INCOMPLETE: &str = "agent_observer.incomplete";
/// How the session was found: `exec`, `procfs` (already running at start-up) or `watch`.
pub const SESSION_DISCOVERY: &str = "agent_observer.session.discovery";
/// Events the kernel could not deliver while the session ran (ring buffer full and so on).
pub const EVENTS_LOST: &str = "agent_observer.events_lost";

/// With on-demand syscall capture: how long after the session started capture was attached.
/// File and network activity before that was not observed.
pub const CAPTURE_ARMED_LATE_NS: &str = "agent_observer.capture.armed_late_ns";

pub const OP_INVOKE_AGENT: &str = "invoke_agent";

pub const SPAN_FILE_WRITE: &str = "file write";
pub const SPAN_FILE_RENAME: &str = "file rename";
pub const SPAN_FILE_DELETE: &str = "file delete";
pub const SPAN_FILE_MKDIR: &str = "file mkdir";
pub const SPAN_FILE_CHMOD: &str = "file chmod";
pub const SPAN_FILE_LINK: &str = "file link";
pub const SPAN_FILE_TRUNCATE: &str = "file truncate";
pub const SPAN_FILE_MMAP: &str = "file mmap";

pub const FILE_PATH: &str = "file.path";
pub const FILE_NAME: &str = "file.name";
pub const FILE_DIRECTORY: &str = "file.directory";
pub const FILE_SIZE: &str = "file.size";
pub const FILE_SYMLINK_TARGET: &str = "file.symbolic_link.target_path";
/// The path's bytes in hex, when they are not valid UTF-8 (file.path then shows `\xNN`).
pub const FILE_PATH_HEX: &str = "agent_observer.file.path_hex";
pub const FILE_PATH_TRUNCATED: &str = "agent_observer.file.path_truncated";
pub const FILE_TARGET_PATH: &str = "agent_observer.file.target_path";
pub const FILE_RENAME_FLAGS: &str = "agent_observer.file.rename_flags";
pub const FILE_LINK_SOURCE: &str = "agent_observer.file.link_source";
pub const FILE_LINK_KIND: &str = "agent_observer.file.link_kind";
pub const FILE_TYPE: &str = "agent_observer.file.type";
pub const FILE_MODE: &str = "agent_observer.file.mode";
pub const FILE_BYTES_WRITTEN: &str = "agent_observer.file.bytes_written";
pub const FILE_WRITE_COUNT: &str = "agent_observer.file.write_count";
pub const FILE_OPEN_FLAGS: &str = "agent_observer.file.open_flags";
/// The process wrote through an fd it did not open (inherited or passed).
pub const FILE_INHERITED_FD: &str = "agent_observer.file.inherited_fd";
/// The open created the file (it did not exist before).
pub const FILE_CREATED: &str = "agent_observer.file.created";
pub const FILE_TRUNCATED_TO: &str = "agent_observer.file.truncated_to";
pub const FILE_MMAP_SHARED_WRITE: &str = "agent_observer.file.mmap_shared_writable";
pub const FILE_MMAP_LENGTH: &str = "agent_observer.file.mmap_length";
pub const FILE_FIRST_WRITE_NS: &str = "agent_observer.file.first_write_unix_nano";
pub const FILE_INODE: &str = "agent_observer.file.inode";
pub const FILE_SHA256: &str = "agent_observer.file.sha256";
/// `ok`, `changed-after-close` (modified again before it could be read), `replaced` (another
/// file is at the path now), `too-large`, `gone` or `error`.
pub const FILE_HASH_STATUS: &str = "agent_observer.file.hash_status";
pub const FILE_HASH_ERROR: &str = "agent_observer.file.hash_error";
/// The file was renamed after it was written; file.path is where it was written.
pub const FILE_RENAMED_TO: &str = "agent_observer.file.renamed_to";

pub const FILES_CREATED: &str = "agent_observer.files.created";
pub const FILES_MODIFIED: &str = "agent_observer.files.modified";
pub const FILES_DELETED: &str = "agent_observer.files.deleted";
pub const FILES_BYTES_WRITTEN: &str = "agent_observer.files.bytes_written";
pub const FILES_NOISE_CHANGES: &str = "agent_observer.files.noise_changes";

pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
pub const CLIENT_PORT: &str = "client.port";
pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
pub const NETWORK_PEER_PORT: &str = "network.peer.port";
pub const NETWORK_TRANSPORT: &str = "network.transport";
pub const NETWORK_TYPE: &str = "network.type";
pub const TLS_SERVER_NAME: &str = "tls.client.server_name";
pub const TLS_ALPN_OFFERED: &str = "agent_observer.tls.alpn_offered";
pub const CONN_TLS: &str = "agent_observer.connection.tls";
pub const CONN_BYTES_SENT: &str = "agent_observer.connection.bytes_sent";
pub const CONN_BYTES_RECEIVED: &str = "agent_observer.connection.bytes_received";
/// The connection was first seen carrying data (it predates tracking), not at connect.
pub const CONN_SEEN_MID_STREAM: &str = "agent_observer.connection.seen_mid_stream";
/// Plaintext bytes captured (TLS plaintext, or bytes of a plain connection) and lost.
pub const CONN_PLAINTEXT_BYTES: &str = "agent_observer.connection.plaintext_bytes";
pub const CONN_PLAINTEXT_LOST: &str = "agent_observer.connection.plaintext_lost_bytes";
/// `captured`, `partial` (some bytes lost) or `missing`.
pub const TLS_PLAINTEXT: &str = "agent_observer.tls.plaintext";
/// Why plaintext is missing or partial: `unsupported-tls-library`, `probe-failed`,
/// `probe-attached-late`, `not-observed`, `truncated`.
pub const TLS_GAP_REASON: &str = "agent_observer.tls.gap_reason";
/// `openssl`, `boringssl`, `gnutls`, `nss`, `rustls`, `go-crypto-tls`.
pub const TLS_LIBRARY: &str = "agent_observer.tls.library";
