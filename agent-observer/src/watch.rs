//! Starting a command for `agent-observer watch`, held just before exec until it is tracked.

use std::{
    ffi::{CString, OsString},
    io,
    os::unix::ffi::OsStrExt as _,
};

use anyhow::{Context as _, bail};

/// A forked child that has not exec'd yet.
pub struct HeldChild {
    pub pid: u32,
    go: libc::c_int,
    error: libc::c_int,
    reaped: Option<i32>,
}

/// How the watched command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStatus {
    Running,
    /// Shell-style exit code: the code, or 128 + signal.
    Exited(i32),
}

/// Forks; the child waits for [`HeldChild::release`] and then execs `argv` (searching PATH).
pub fn spawn_held(argv: &[OsString]) -> anyhow::Result<HeldChild> {
    if argv.is_empty() {
        bail!("watch needs a command: agent-observer watch -- CMD [ARGS...]");
    }
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).context("argument contains a NUL byte"))
        .collect::<anyhow::Result<_>>()?;
    let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let go = pipe()?;
    let err = pipe()?;
    // SAFETY: the child only calls async-signal-safe functions before exec or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        // SAFETY: all async-signal-safe; memory was prepared before fork.
        unsafe {
            libc::close(go[1]);
            libc::close(err[0]);
            let mut byte = 0u8;
            let n = libc::read(go[0], (&raw mut byte).cast(), 1);
            if n != 1 {
                libc::_exit(126);
            }
            libc::close(go[0]);
            libc::fcntl(err[1], libc::F_SETFD, libc::FD_CLOEXEC);
            libc::execvp(ptrs[0], ptrs.as_ptr());
            let errno = *libc::__errno_location();
            libc::write(err[1], (&raw const errno).cast(), size_of::<libc::c_int>());
            libc::_exit(127);
        }
    }
    // SAFETY: closing our copies of the child's ends.
    unsafe {
        libc::close(go[0]);
        libc::close(err[1]);
    }
    Ok(HeldChild { pid: pid as u32, go: go[1], error: err[0], reaped: None })
}

fn pipe() -> anyhow::Result<[libc::c_int; 2]> {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error()).context("pipe");
    }
    Ok(fds)
}

impl HeldChild {
    /// Lets the child exec; fails if the exec itself failed.
    pub fn release(&mut self) -> anyhow::Result<()> {
        let byte = 1u8;
        // SAFETY: valid fds owned by us.
        unsafe {
            libc::write(self.go, (&raw const byte).cast(), 1);
            libc::close(self.go);
        }
        let mut errno: libc::c_int = 0;
        // SAFETY: reads until the child execs (EOF via CLOEXEC) or reports errno.
        let n = unsafe { libc::read(self.error, (&raw mut errno).cast(), size_of::<libc::c_int>()) };
        // SAFETY: our fd.
        unsafe { libc::close(self.error) };
        if n == size_of::<libc::c_int>() as isize {
            bail!("cannot run the command: {}", io::Error::from_raw_os_error(errno));
        }
        Ok(())
    }

    /// Reaps the child if it has ended; remembers its status.
    pub fn poll(&mut self) -> ChildStatus {
        if let Some(code) = self.reaped {
            return ChildStatus::Exited(code);
        }
        let mut status = 0;
        // SAFETY: our own child.
        let rc = unsafe { libc::waitpid(self.pid as i32, &mut status, libc::WNOHANG) };
        if rc != self.pid as i32 {
            return ChildStatus::Running;
        }
        let code = if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            libc::WEXITSTATUS(status)
        };
        self.reaped = Some(code);
        ChildStatus::Exited(code)
    }

    pub fn signal(&self, signal: i32) {
        if self.reaped.is_some() {
            return; // the pid may belong to someone else by now
        }
        // SAFETY: plain kill of our child.
        unsafe { libc::kill(self.pid as i32, signal) };
    }
}
