// CSystemShim: the Linux calls that Swift cannot make directly: ioctls whose request numbers are function-like
// macros (TUNSETIFF, TUNSETOFFLOAD, TUNSETVNETHDRSZ, SIOCSIFFLAGS, SIOCSIFMTU), the GNU-only calls the Swift
// overlay does not export (the batched socket calls, pipe2, posix_spawn's closefrom, unshare), pidfd_open (a bare
// system call) and SO_ATTACH_FILTER's struct sock_fprog. Each function returns what its C call returns (-1 with
// errno set on failure, or an error number for the posix_spawn family); nothing else.
#ifndef TUNNAT_CSYSTEMSHIM_H
#define TUNNAT_CSYSTEMSHIM_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <spawn.h>
// struct sock_filter, the classic BPF opcode parts (BPF_LD, BPF_ABS, ...) and SKF_NET_OFF, for Swift to use by name.
#include <linux/filter.h>

// linux/if_tun.h
#define TUNNAT_IFF_TUN 0x0001
#define TUNNAT_IFF_NO_PI 0x1000
#define TUNNAT_IFF_VNET_HDR 0x4000
#define TUNNAT_IFF_MULTI_QUEUE 0x0100
#define TUNNAT_TUN_F_CSUM 0x01
#define TUNNAT_TUN_F_TSO4 0x02
#define TUNNAT_TUN_F_TSO6 0x04
#define TUNNAT_TUN_F_TSO_ECN 0x08
// Linux 6.2 and later; older headers do not have them.
#define TUNNAT_TUN_F_USO4 0x20
#define TUNNAT_TUN_F_USO6 0x40

/// ioctl(fd, TUNSETIFF) with IFF_* `flags` for device `name`; on success the kernel's name (which may differ when
/// `name` holds a %d pattern) is copied into `actual` (IFNAMSIZ bytes).
int tunnat_tun_set_iff(int fd, const char *name, short flags, char *actual);
/// ioctl(fd, TUNSETOFFLOAD, flags).
int tunnat_tun_set_offload(int fd, unsigned int flags);
/// ioctl(fd, TUNSETVNETHDRSZ, &size).
int tunnat_tun_set_vnet_hdr_size(int fd, int size);
/// ioctl(fd, TUNGETFEATURES, &features).
int tunnat_tun_get_features(int fd, unsigned int *features);
/// SIOCGIFFLAGS + SIOCSIFFLAGS(IFF_UP) and SIOCSIFMTU through an AF_INET datagram socket.
int tunnat_link_up(const char *name, int mtu);

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC): a GNU call the Swift overlay does not export.
int tunnat_accept_cloexec(int fd);

/// sendmsg(2) of one datagram on a connected socket with one descriptor passed beside it (SCM_RIGHTS): how a
/// service hands a socket to the service manager's store (sd_pid_notify_with_fds(3)).
ssize_t tunnat_send_with_descriptor(int sock, const void *bytes, size_t length, int fd);

/// pipe2(fds, O_CLOEXEC): fds[0] is the read end, fds[1] the write end.
int tunnat_pipe_cloexec(int fds[2]);

/// pidfd_open(pid, 0) (Linux 5.3) through syscall(2): a descriptor for the process that poll(2) sees as readable
/// once it has exited.
int tunnat_pidfd_open(pid_t pid);

/// posix_spawn_file_actions_addclosefrom_np(actions, from) (glibc 2.34): the spawned program inherits no
/// descriptor numbered `from` or above.
int tunnat_spawn_actions_close_from(posix_spawn_file_actions_t *actions, int from);

/// unshare(CLONE_NEWNET): moves the calling thread into a new network namespace.
int tunnat_unshare_network(void);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): a descriptor that poll(2) sees as readable once written to.
int tunnat_eventfd(void);

/// Names the calling thread (prctl PR_SET_NAME: at most 15 bytes kept).
int tunnat_name_thread(const char *name);

/// One datagram for sendmmsg: `length` bytes at `bytes`, sent to the IPv4 address `destination` (network order).
struct tunnat_datagram {
    const void *bytes;
    size_t length;
    uint32_t destination;
};
/// sendmmsg(fd, ...) of up to 64 datagrams; returns how many the kernel took.
int tunnat_sendmmsg(int fd, const struct tunnat_datagram *datagrams, unsigned int count);

/// One receive slot for recvmmsg: the caller's buffer (`bytes`, `capacity` bytes), and what the kernel filled in:
/// the datagram's real `length` (MSG_TRUNC: longer than `capacity` when it was cut) and its sender's IPv4 address
/// and port (network order).
struct tunnat_receive_slot {
    void *bytes;
    size_t capacity;
    size_t length;
    uint32_t source_address;
    uint16_t source_port;
};
/// recvmmsg(fd, ..., MSG_DONTWAIT | MSG_TRUNC, NULL) into up to 64 slots; returns how many datagrams arrived.
int tunnat_recvmmsg(int fd, struct tunnat_receive_slot *slots, unsigned int count);

/// setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER) of a classic BPF program of `count` instructions.
int tunnat_attach_filter(int fd, const struct sock_filter *program, unsigned short count);

/// getrandom(buf, len, 0) (sys/random.h, which Swift's Glibc module does not export).
ssize_t tunnat_getrandom(void *buffer, size_t length);

// linux/if_packet.h, linux/rtnetlink.h (constants Swift's Glibc module does not export)
#define TUNNAT_SOL_PACKET 263
#define TUNNAT_PACKET_VNET_HDR 15

/// One frame for a packet socket's sendmmsg: `prefix` (the virtio-net header and the Ethernet header) then
/// `length` bytes at `bytes` (the IP packet), out of interface `ifindex`.
struct tunnat_frame {
    const void *prefix;
    size_t prefix_length;
    const void *bytes;
    size_t length;
    int ifindex;
};
/// sendmmsg(fd, ..., MSG_DONTWAIT) on an AF_PACKET SOCK_RAW socket of up to 64 frames, each as two iovecs and a
/// sockaddr_ll naming its interface (protocol ETH_P_IP); returns how many the kernel took.
int tunnat_packet_sendmmsg(int fd, const struct tunnat_frame *frames, unsigned int count);

/// A TUN queue's reads through io_uring (liburing): one multishot read (Linux 6.7) of `fd` into a ring of
/// `count` provided buffers, buffer i at `base + i * stride + offset`, `length` bytes long, and a poll of
/// `stop_fd`. The kernel reads a frame into a free buffer as soon as it is queued, in order; the caller takes the
/// filled buffers' ids and lengths, then gives them back. Opaque; one thread only.
struct tunnat_read_ring;
/// NULL with errno set when the kernel refuses (ENOSYS, EPERM where io_uring is disabled, EINVAL before 6.7).
/// `count`: a power of two from 1 to 256. Nothing is read before tunnat_read_ring_start.
struct tunnat_read_ring *tunnat_read_ring_open(int fd, int stop_fd, void *base, size_t stride, size_t offset,
                                               unsigned int length, unsigned int count);
/// Starts the read and the stop poll; the calling thread becomes the only one that may use the ring from then on.
/// 0, or -errno.
int tunnat_read_ring_start(struct tunnat_read_ring *ring);
/// Waits up to `timeout_ms` for a completion: 1 when one is there, 0 when the time passed or the stop poll fired,
/// -errno when the wait failed.
int tunnat_read_ring_wait(struct tunnat_read_ring *ring, int timeout_ms);
/// Takes up to `max` filled buffers without waiting (one io_uring_enter only when none is there yet): their ids and
/// lengths in the order the frames were read; returns how many. Reads that failed are counted in `*errors` (the
/// last errno in `*last_error`), not returned.
int tunnat_read_ring_take(struct tunnat_read_ring *ring, uint16_t *ids, size_t *lengths, unsigned int max,
                          unsigned int *errors, int *last_error);
/// Gives buffers back to the kernel, and restarts the read if it ended for want of one.
void tunnat_read_ring_release(struct tunnat_read_ring *ring, const uint16_t *ids, unsigned int count);
/// Cancels the read and frees the ring (not the buffers, which are the caller's).
void tunnat_read_ring_close(struct tunnat_read_ring *ring);

#endif
