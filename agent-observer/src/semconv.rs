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

pub const OP_INVOKE_AGENT: &str = "invoke_agent";
