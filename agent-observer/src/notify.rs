//! Telling supervisors the daemon is ready: a ready file and systemd's READY=1.

use std::{os::unix::net::UnixDatagram, path::Path};

use anyhow::Context as _;

pub fn ready(ready_file: Option<&Path>) -> anyhow::Result<()> {
    if let Some(path) = ready_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write ready file {}", path.display()))?;
    }
    sd_notify("READY=1")
}

/// Sends a state line to $NOTIFY_SOCKET when systemd set one.
pub fn sd_notify(state: &str) -> anyhow::Result<()> {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else { return Ok(()) };
    let sock = UnixDatagram::unbound().context("NOTIFY_SOCKET: cannot create socket")?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(socket.as_os_str());
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)
    } else {
        sock.send_to(state.as_bytes(), Path::new(&socket))
    };
    sent.with_context(|| format!("cannot notify systemd at {}", socket.to_string_lossy()))?;
    Ok(())
}
