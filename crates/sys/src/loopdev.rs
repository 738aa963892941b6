//! Loop devices over image files, configured in one `LOOP_CONFIGURE` call with `AUTOCLEAR`.
//!
//! Why autoclear: the kernel detaches an autoclear loop device when the last user goes away.
//! We hold the only open file descriptor of the device node, and mounts of it live in our private
//! mount namespace, so whatever way osbuild-rs ends (error, SIGTERM, SIGKILL) the device is
//! released: no `losetup -d` has to run for nothing to leak.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::SysError;

const LOOP_MAJOR: u32 = 7;
// From <linux/loop.h>.
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_PARTSCAN: u32 = 8;
// From <linux/fs.h>: flush the buffer cache of a block device.
const BLKFLSBUF: libc::c_ulong = 0x1261;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// How to attach a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoopOptions {
    /// Byte offset into the file.
    pub offset: u64,
    /// Bytes visible from `offset`; 0 means up to the end of the file.
    pub sizelimit: u64,
    /// Logical sector size; 0 leaves the kernel default (512).
    pub block_size: u32,
    pub read_only: bool,
    pub partscan: bool,
    /// Hold an exclusive `flock` on the device while attached, which tells udev to leave it alone
    /// (upstream's `lock` option).
    pub lock: bool,
}

/// An attached loop device; dropping it flushes and detaches it.
#[derive(Debug)]
pub struct LoopDevice {
    /// Declared before `dev` so the lock is released before the detach completes.
    lock: Option<nix::fcntl::Flock<File>>,
    dev: File,
    number: u32,
    node: PathBuf,
    /// Kept open so the backing file stays the same inode while attached.
    _backing: File,
}

fn errno_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SysError {
    let path = path.to_owned();
    move |source| SysError::Loop { what, path, source }
}

impl LoopDevice {
    /// Attach `file` (opened read-write unless `read_only`) to a free loop device. `dev_dir` is
    /// where device nodes live. On the host (`make_node` false) the kernel creates the node and we
    /// wait for it; a sandbox has its own `/dev`, so there (`make_node`) we create it at once.
    pub fn attach(file: &Path, opts: &LoopOptions, dev_dir: &Path, make_node: bool) -> Result<LoopDevice, SysError> {
        let backing = OpenOptions::new()
            .read(true)
            .write(!opts.read_only)
            .custom_flags(libc::O_CLOEXEC)
            .open(file)
            .map_err(errno_err("open the image file", file))?;
        LoopDevice::attach_file(backing, file, opts, dev_dir, make_node)
    }

    /// Attach the already opened image `backing` (read-write unless `read_only`); `file` names
    /// it in messages. What the engine uses: the image was found inside a tree by descriptor.
    pub fn attach_file(
        backing: File,
        file: &Path,
        opts: &LoopOptions,
        dev_dir: &Path,
        make_node: bool,
    ) -> Result<LoopDevice, SysError> {
        let ctl_path = Path::new("/dev/loop-control");
        let ctl = File::open(ctl_path).map_err(errno_err("open", ctl_path))?;
        let mut flags = LO_FLAGS_AUTOCLEAR;
        if opts.read_only {
            flags |= LO_FLAGS_READ_ONLY;
        }
        if opts.partscan {
            flags |= LO_FLAGS_PARTSCAN;
        }
        let config = LoopConfig {
            fd: backing.as_raw_fd() as u32,
            block_size: opts.block_size,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: opts.offset,
                lo_sizelimit: opts.sizelimit,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: flags,
                lo_file_name: [0; 64],
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // Another process may take the free device between GET_FREE and CONFIGURE (EBUSY): retry.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
            #[allow(unsafe_code)]
            let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
            if n < 0 {
                return Err(errno_err("find a free loop device via", ctl_path)(std::io::Error::last_os_error()));
            }
            let number = n as u32;
            let node = dev_dir.join(format!("loop{number}"));
            let dev = open_node(&node, number, opts.read_only, make_node)?;
            // SAFETY: `config` is a properly initialised `struct loop_config` that outlives the call;
            // the kernel only reads it.
            #[allow(unsafe_code)]
            let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &config as *const LoopConfig) };
            if rc == 0 {
                let mut lo = LoopDevice { lock: None, dev, number, node: node.clone(), _backing: backing };
                if opts.lock {
                    let fd = lo.dev.try_clone().map_err(errno_err("lock", &node))?;
                    let lock = nix::fcntl::Flock::lock(fd, nix::fcntl::FlockArg::LockExclusive)
                        .map_err(|(_, e)| errno_err("lock", &node)(e.into()))?;
                    lo.lock = Some(lock);
                }
                return Ok(lo);
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBUSY) || Instant::now() > deadline {
                return Err(errno_err("attach", file)(e));
            }
        }
    }

    /// The device's name, e.g. `loop3`.
    pub fn name(&self) -> String {
        format!("loop{}", self.number)
    }

    pub fn major(&self) -> u32 {
        LOOP_MAJOR
    }

    pub fn minor(&self) -> u32 {
        self.number
    }

    /// The node this device was opened through (in `dev_dir`).
    pub fn node(&self) -> &Path {
        &self.node
    }

    /// The node on the host, e.g. `/dev/loop3`.
    pub fn host_path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/loop{}", self.number))
    }

    /// The image file behind the device.
    pub fn backing(&self) -> &File {
        &self._backing
    }

    /// Flush what was written through the device to the image and detach it. A failed flush
    /// (the image's file system is full, the disk fails) is an error: the image lost writes.
    pub fn close(self) -> Result<(), SysError> {
        let flushed = self.dev.sync_all().map_err(errno_err("flush", &self.node));
        drop(self);
        flushed
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // Flush first: clearing a loop device with dirty buffers has lost data (upstream found
        // this on 5.13). Then ask for the detach; AUTOCLEAR completes it when our fd closes.
        // SAFETY: both ioctls take no pointer argument.
        #[allow(unsafe_code)]
        unsafe {
            libc::ioctl(self.dev.as_raw_fd(), BLKFLSBUF, 0);
            libc::ioctl(self.dev.as_raw_fd(), LOOP_CLR_FD, 0);
        }
    }
}

/// Open (creating it when missing) the node of loop device `number`. The kernel creates host
/// nodes asynchronously (devtmpfs), so a missing node is waited for briefly before we make one.
fn open_node(node: &Path, number: u32, read_only: bool, make_node: bool) -> Result<File, SysError> {
    let open = || OpenOptions::new().read(true).write(!read_only).custom_flags(libc::O_CLOEXEC).open(node);
    for _ in 0..(if make_node { 1 } else { 200 }) {
        match std::fs::symlink_metadata(node) {
            Ok(md) if md.file_type().is_block_device() => return open().map_err(errno_err("open", node)),
            Ok(_) => {
                return Err(SysError::Loop {
                    what: "use (not a block device)",
                    path: node.to_owned(),
                    source: std::io::Error::from_raw_os_error(libc::ENOTBLK),
                })
            }
            Err(_) if make_node => break,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let dev = nix::sys::stat::makedev(LOOP_MAJOR as u64, number as u64);
    match nix::sys::stat::mknod(
        node,
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o660),
        dev,
    ) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(errno_err("create the node", node)(e.into())),
    }
    open().map_err(errno_err("open", node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layout_matches_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
