//! Resolves [`Offsets`] for the running kernel from its BTF.

use agent_observer_common::Offsets;

use super::btf::{Btf, BtfError};

/// Every field the kernel programs read, as (struct, member path).
pub fn resolve(btf: &Btf) -> Result<Offsets, BtfError> {
    let o = |s: &str, m: &str| btf.offset_of(s, m);
    Ok(Offsets {
        task_pid: o("task_struct", "pid")?,
        task_tgid: o("task_struct", "tgid")?,
        task_exit_code: o("task_struct", "exit_code")?,
        task_mm: o("task_struct", "mm")?,
        task_fs: o("task_struct", "fs")?,
        task_files: o("task_struct", "files")?,
        mm_arg_start: o("mm_struct", "arg_start")?,
        mm_arg_end: o("mm_struct", "arg_end")?,
        fs_pwd: o("fs_struct", "pwd")?,
        path_mnt: o("path", "mnt")?,
        path_dentry: o("path", "dentry")?,
        dentry_parent: o("dentry", "d_parent")?,
        dentry_name: o("dentry", "d_name")?,
        qstr_name: o("qstr", "name")?,
        mount_mnt: o("mount", "mnt")?,
        mount_parent: o("mount", "mnt_parent")?,
        mount_mountpoint: o("mount", "mnt_mountpoint")?,
        vfsmount_root: o("vfsmount", "mnt_root")?,
        files_fdt: o("files_struct", "fdt")?,
        fdtable_max_fds: o("fdtable", "max_fds")?,
        fdtable_fd: o("fdtable", "fd")?,
        file_path: o("file", "f_path")?,
        file_inode: o("file", "f_inode")?,
        file_mode: o("file", "f_mode")?,
        file_flags: o("file", "f_flags")?,
        file_private_data: o("file", "private_data")?,
        inode_mode: o("inode", "i_mode")?,
        inode_ino: o("inode", "i_ino")?,
        inode_sb: o("inode", "i_sb")?,
        inode_size: o("inode", "i_size")?,
        sb_dev: o("super_block", "s_dev")?,
        socket_sk: o("socket", "sk")?,
        sock_family: o("sock", "__sk_common.skc_family")?,
        sock_type: o("sock", "sk_type")?,
        sock_protocol: o("sock", "sk_protocol")?,
        sock_dport: o("sock", "__sk_common.skc_dport")?,
        sock_num: o("sock", "__sk_common.skc_num")?,
        sock_daddr: o("sock", "__sk_common.skc_daddr")?,
        sock_rcv_saddr: o("sock", "__sk_common.skc_rcv_saddr")?,
        sock_v6_daddr: o("sock", "__sk_common.skc_v6_daddr")?,
        sock_v6_rcv_saddr: o("sock", "__sk_common.skc_v6_rcv_saddr")?,
        _pad: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against the BTF of the machine the tests run on; every CI machine has it.
    #[test]
    fn resolves_every_offset_on_this_kernel() {
        let btf = Btf::from_sys_fs().expect("kernel BTF is required");
        let offsets = resolve(&btf).expect("all fields resolve");
        assert!(offsets.task_tgid > 0 && offsets.task_tgid != offsets.task_pid);
        assert!(offsets.mm_arg_end > offsets.mm_arg_start);
        assert_eq!(offsets.qstr_name, 8, "qstr is {{ hash_len, name }}");
    }
}
