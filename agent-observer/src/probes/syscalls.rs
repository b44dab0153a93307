//! The syscall sensors: which syscalls go to which kernel handler, and how each one's arguments
//! are read. The kernel side is arch-neutral; this table is per architecture.
//!
//! # Cost
//! Each handler is attached to the `syscalls:sys_{enter,exit}_NAME` tracepoints of the syscalls
//! it handles, so a syscall not listed here runs no BPF. A listed one costs every process, tracked
//! or not, one program run and one map lookup (about 0.1-0.2 µs on a 2-core VM). See [`Arming`]
//! for attaching them only while sessions are live.

use agent_observer_common::{REG_NONE, SyscallSpec, op};

/// Which kernel program handles a syscall, at entry or at exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// At exit: opens for writing.
    FileOpen,
    /// At exit: data written (files, and sockets for the network sensor).
    FileWrite,
    /// At entry: closes (and dup2/dup3 over an open fd).
    FileClose,
    /// At exit: namespace and metadata changes.
    FileOp,
    /// At exit: a TCP connection.
    SockConnect,
    /// No syscall hook: the entry only tells the socket sensor where the syscall's buffers are.
    Layout,
}

impl Handler {
    pub fn program(self) -> &'static str {
        match self {
            Handler::FileOpen => "file_open",
            Handler::FileWrite => "file_write",
            Handler::FileClose => "file_close",
            Handler::FileOp => "file_op",
            Handler::SockConnect => "sock_connect",
            Handler::Layout => "",
        }
    }

    pub fn at_entry(self) -> bool {
        matches!(self, Handler::FileClose)
    }

    /// The tracepoint (in `syscalls`) for syscall `name`.
    pub fn tracepoint(self, name: &str) -> String {
        if self.at_entry() { format!("sys_enter_{name}") } else { format!("sys_exit_{name}") }
    }
}

/// When the syscall hooks are attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arming {
    /// From start-up to exit: nothing a session does is missed.
    #[default]
    Always,
    /// Only while at least one session is live. Untracked processes pay nothing when no agent
    /// runs, but the first milliseconds of a session found at exec (before the daemon reacts)
    /// are not observed; the gap is reported on the session span.
    OnDemand,
}

/// Which argument (0-5, in C order) holds what, for one syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub op: u8,
    pub fd: u8,
    pub dirfd_a: u8,
    pub name_a: u8,
    pub dirfd_b: u8,
    pub name_b: u8,
    pub flags: u8,
    pub value: u8,
    pub extra: u8,
    pub buf: u8,
    pub iov: u8,
    pub msg: u8,
}

/// No such argument.
pub const N: u8 = 0xff;

const fn spec(op: u8, fd: u8, dirfd_a: u8, name_a: u8, dirfd_b: u8, name_b: u8, flags: u8, value: u8) -> Layout {
    Layout { op, fd, dirfd_a, name_a, dirfd_b, name_b, flags, value, extra: N, buf: N, iov: N, msg: N }
}

/// Socket data through `buf` with its length in `len`.
const fn data_buf(fd: u8, buf: u8, len: u8) -> Layout {
    let mut l = spec(op::SOCK_DATA, fd, N, N, N, N, N, len);
    l.buf = buf;
    l
}

/// Socket data through an iovec array `iov` of `count` entries.
const fn data_iov(fd: u8, iov: u8, count: u8) -> Layout {
    let mut l = spec(op::SOCK_DATA, fd, N, N, N, N, N, count);
    l.iov = iov;
    l
}

/// Socket data through a msghdr.
const fn data_msg(fd: u8, msg: u8) -> Layout {
    let mut l = spec(op::SOCK_DATA, fd, N, N, N, N, N, N);
    l.msg = msg;
    l
}

impl Layout {
    const fn with_extra(mut self, extra: u8) -> Layout {
        self.extra = extra;
        self
    }

    /// The kernel's form: argument indices turned into `struct pt_regs` offsets.
    pub fn to_spec(&self, regs: &[u32; 6]) -> SyscallSpec {
        let reg = |arg: u8| regs.get(arg as usize).map_or(REG_NONE, |off| *off as u16);
        SyscallSpec {
            op: self.op as u16,
            fd: reg(self.fd),
            dirfd_a: reg(self.dirfd_a),
            name_a: reg(self.name_a),
            dirfd_b: reg(self.dirfd_b),
            name_b: reg(self.name_b),
            flags: reg(self.flags),
            value: reg(self.value),
            extra: reg(self.extra),
            buf: reg(self.buf),
            iov: reg(self.iov),
            msg: reg(self.msg),
        }
    }

    const fn with_buf(mut self, buf: u8) -> Layout {
        self.buf = buf;
        self
    }

    const fn with_iov(mut self, iov: u8) -> Layout {
        self.iov = iov;
        self
    }

    pub fn args(&self) -> [u8; 11] {
        [
            self.fd, self.dirfd_a, self.name_a, self.dirfd_b, self.name_b, self.flags, self.value, self.extra, self.buf,
            self.iov, self.msg,
        ]
    }
}

/// (syscall number, handler, argument layout).
#[cfg(target_arch = "x86_64")]
pub const TABLE: &[(u32, &str, Handler, Layout)] = &[
    (2, "open", Handler::FileOpen, spec(op::OPEN, N, N, 0, N, N, 1, 2)),
    (257, "openat", Handler::FileOpen, spec(op::OPEN, N, 0, 1, N, N, 2, 3)),
    (437, "openat2", Handler::FileOpen, spec(op::OPEN_HOW, N, 0, 1, N, N, 2, N)),
    (85, "creat", Handler::FileOpen, spec(op::CREAT, N, N, 0, N, N, N, 1)),
    (1, "write", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, 2).with_buf(1)),
    (18, "pwrite64", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, 2)),
    (20, "writev", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, 2).with_iov(1)),
    (296, "pwritev", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),
    (328, "pwritev2", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),
    (40, "sendfile64", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)), // (out_fd)
    (326, "copy_file_range", Handler::FileWrite, spec(op::WRITE, 2, N, N, N, N, N, N)), // (fd_out)
    (275, "splice", Handler::FileWrite, spec(op::WRITE, 2, N, N, N, N, N, N)), // (fd_out)
    (3, "close", Handler::FileClose, spec(op::CLOSE, 0, N, N, N, N, N, N)),
    (33, "dup2", Handler::FileClose, spec(op::DUP_OVER, 1, N, N, N, N, N, 0)), //(old, new)
    (292, "dup3", Handler::FileClose, spec(op::DUP_OVER, 1, N, N, N, N, N, 0)), //(old, new, flags)
    (82, "rename", Handler::FileOp, spec(op::RENAME, N, N, 0, N, 1, N, N)),
    (264, "renameat", Handler::FileOp, spec(op::RENAME, N, 0, 1, 2, 3, N, N)),
    (316, "renameat2", Handler::FileOp, spec(op::RENAME, N, 0, 1, 2, 3, 4, N)),
    (87, "unlink", Handler::FileOp, spec(op::UNLINK, N, N, 0, N, N, N, N)),
    (263, "unlinkat", Handler::FileOp, spec(op::UNLINK, N, 0, 1, N, N, 2, N)), // (AT_REMOVEDIR)
    (84, "rmdir", Handler::FileOp, spec(op::RMDIR, N, N, 0, N, N, N, N)),
    (83, "mkdir", Handler::FileOp, spec(op::MKDIR, N, N, 0, N, N, N, 1)),
    (258, "mkdirat", Handler::FileOp, spec(op::MKDIR, N, 0, 1, N, N, N, 2)),
    (90, "chmod", Handler::FileOp, spec(op::CHMOD, N, N, 0, N, N, N, 1)),
    (91, "fchmod", Handler::FileOp, spec(op::CHMOD, 0, N, N, N, N, N, 1)),
    (268, "fchmodat", Handler::FileOp, spec(op::CHMOD, N, 0, 1, N, N, N, 2)),
    (452, "fchmodat2", Handler::FileOp, spec(op::CHMOD, N, 0, 1, N, N, 3, 2)),
    (88, "symlink", Handler::FileOp, spec(op::SYMLINK, N, N, 0, N, 1, N, N)), //(target, path)
    (266, "symlinkat", Handler::FileOp, spec(op::SYMLINK, N, N, 0, 1, 2, N, N)),
    (86, "link", Handler::FileOp, spec(op::LINK, N, N, 0, N, 1, N, N)),
    (265, "linkat", Handler::FileOp, spec(op::LINK, N, 0, 1, 2, 3, 4, N)),
    (76, "truncate", Handler::FileOp, spec(op::TRUNCATE, N, N, 0, N, N, N, 1)),
    (77, "ftruncate", Handler::FileOp, spec(op::TRUNCATE, 0, N, N, N, N, N, 1)),
    (42, "connect", Handler::SockConnect, spec(op::CONNECT, 0, N, N, N, N, N, N)),
    (0, "read", Handler::Layout, data_buf(0, 1, 2)),
    (19, "readv", Handler::Layout, data_iov(0, 1, 2)),
    (44, "sendto", Handler::Layout, data_buf(0, 1, 2)),
    (45, "recvfrom", Handler::Layout, data_buf(0, 1, 2)),
    (46, "sendmsg", Handler::Layout, data_msg(0, 1)),
    (47, "recvmsg", Handler::Layout, data_msg(0, 1)),
    (9, "mmap", Handler::FileOp, spec(op::MMAP, 4, N, N, N, N, 3, 1).with_extra(2)), //(addr, len, prot, flags, fd)
];

/// aarch64 has only the *at variants.
#[cfg(target_arch = "aarch64")]
pub const TABLE: &[(u32, &str, Handler, Layout)] = &[
    (56, "openat", Handler::FileOpen, spec(op::OPEN, N, 0, 1, N, N, 2, 3)),
    (437, "openat2", Handler::FileOpen, spec(op::OPEN_HOW, N, 0, 1, N, N, 2, N)),
    (64, "write", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, 2).with_buf(1)),
    (68, "pwrite64", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, 2)),
    (66, "writev", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, 2).with_iov(1)),
    (70, "pwritev", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),
    (287, "pwritev2", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),
    (71, "sendfile64", Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),
    (285, "copy_file_range", Handler::FileWrite, spec(op::WRITE, 2, N, N, N, N, N, N)),
    (76, "splice", Handler::FileWrite, spec(op::WRITE, 2, N, N, N, N, N, N)),
    (57, "close", Handler::FileClose, spec(op::CLOSE, 0, N, N, N, N, N, N)),
    (24, "dup3", Handler::FileClose, spec(op::DUP_OVER, 1, N, N, N, N, N, 0)),
    (38, "renameat", Handler::FileOp, spec(op::RENAME, N, 0, 1, 2, 3, N, N)),
    (276, "renameat2", Handler::FileOp, spec(op::RENAME, N, 0, 1, 2, 3, 4, N)),
    (35, "unlinkat", Handler::FileOp, spec(op::UNLINK, N, 0, 1, N, N, 2, N)),
    (34, "mkdirat", Handler::FileOp, spec(op::MKDIR, N, 0, 1, N, N, N, 2)),
    (52, "fchmod", Handler::FileOp, spec(op::CHMOD, 0, N, N, N, N, N, 1)),
    (53, "fchmodat", Handler::FileOp, spec(op::CHMOD, N, 0, 1, N, N, N, 2)),
    (452, "fchmodat2", Handler::FileOp, spec(op::CHMOD, N, 0, 1, N, N, 3, 2)),
    (36, "symlinkat", Handler::FileOp, spec(op::SYMLINK, N, N, 0, 1, 2, N, N)),
    (37, "linkat", Handler::FileOp, spec(op::LINK, N, 0, 1, 2, 3, 4, N)),
    (45, "truncate", Handler::FileOp, spec(op::TRUNCATE, N, N, 0, N, N, N, 1)),
    (46, "ftruncate", Handler::FileOp, spec(op::TRUNCATE, 0, N, N, N, N, N, 1)),
    (203, "connect", Handler::SockConnect, spec(op::CONNECT, 0, N, N, N, N, N, N)),
    (63, "read", Handler::Layout, data_buf(0, 1, 2)),
    (65, "readv", Handler::Layout, data_iov(0, 1, 2)),
    (206, "sendto", Handler::Layout, data_buf(0, 1, 2)),
    (207, "recvfrom", Handler::Layout, data_buf(0, 1, 2)),
    (211, "sendmsg", Handler::Layout, data_msg(0, 1)),
    (212, "recvmsg", Handler::Layout, data_msg(0, 1)),
    (222, "mmap", Handler::FileOp, spec(op::MMAP, 4, N, N, N, N, 3, 1).with_extra(2)),
];

/// Every handler program, so each is loaded once.
pub const HANDLERS: &[Handler] =
    &[Handler::FileOpen, Handler::FileWrite, Handler::FileClose, Handler::FileOp, Handler::SockConnect];

/// Socket data: (program, tracepoint in `sock`). They fire only for sockets.
pub const SOCK_DATA: &[(&str, &str)] = &[("sock_send", "sock_send_length"), ("sock_recv", "sock_recv_length")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_syscall_number_is_listed_once_and_fits_the_dispatch_table() {
        let mut seen = std::collections::HashSet::new();
        for (nr, _, handler, spec) in TABLE {
            assert!(*nr < 512, "{nr} beyond SYSCALL_SLOTS");
            assert!(seen.insert(*nr), "{nr} listed twice");
            assert!(HANDLERS.contains(handler) || *handler == Handler::Layout, "{nr}: handler {handler:?} not loaded");
            for arg in spec.args() {
                assert!(arg < 6 || arg == N, "{nr}: argument index {arg}");
            }
        }
    }

    #[test]
    fn every_listed_syscall_has_a_tracepoint_on_this_kernel() {
        let events = std::path::Path::new("/sys/kernel/tracing/events/syscalls");
        assert!(events.exists() || std::path::Path::new("/sys/kernel/debug/tracing/events/syscalls").exists(), "tracefs must be mounted");
        let root = if events.exists() { events.to_path_buf() } else { "/sys/kernel/debug/tracing/events/syscalls".into() };
        for (_, name, handler, _) in TABLE.iter().filter(|(_, _, h, _)| *h != Handler::Layout) {
            let tp = handler.tracepoint(name);
            assert!(root.join(&tp).exists(), "{tp} missing");
        }
        for (_, tp) in SOCK_DATA {
            assert!(root.join("../sock").join(tp).exists(), "sock:{tp} missing");
        }
    }

    #[test]
    fn layouts_become_register_offsets() {
        let regs = [112, 104, 96, 56, 72, 64];
        let (_, _, _, layout) = TABLE.iter().find(|(nr, _, _, l)| l.op == op::RENAME && l.flags != N && *nr > 0).unwrap();
        let spec = layout.to_spec(&regs);
        assert_eq!((spec.dirfd_a, spec.name_a, spec.dirfd_b, spec.name_b), (112, 104, 96, 56));
        assert_eq!(spec.fd, REG_NONE);
    }

    #[test]
    fn fd_and_path_handlers_have_what_they_read() {
        for (nr, _, handler, spec) in TABLE {
            match handler {
                Handler::FileWrite | Handler::FileClose | Handler::SockConnect => assert_ne!(spec.fd, N, "{nr}"),
                Handler::Layout => assert!(spec.buf != N || spec.iov != N || spec.msg != N, "{nr}"),
                Handler::FileOp => assert!(spec.fd != N || spec.name_a != N, "{nr}"),
                Handler::FileOpen => assert!(spec.op == op::CREAT || spec.flags != N, "{nr}"),
            }
        }
    }
}
