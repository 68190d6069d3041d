#define _GNU_SOURCE
#include <sys/random.h>
#include "CSystemShim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

int tunnat_tun_set_iff(int fd, const char *name, short flags, char *actual) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = flags;
    int rc = ioctl(fd, TUNSETIFF, &ifr);
    if (rc == 0 && actual != NULL) memcpy(actual, ifr.ifr_name, IFNAMSIZ);
    return rc;
}

int tunnat_tun_set_offload(int fd, unsigned int flags) { return ioctl(fd, TUNSETOFFLOAD, flags); }

int tunnat_tun_set_vnet_hdr_size(int fd, int size) { return ioctl(fd, TUNSETVNETHDRSZ, &size); }

int tunnat_tun_get_features(int fd, unsigned int *features) { return ioctl(fd, TUNGETFEATURES, features); }

int tunnat_link_up(const char *name, int mtu) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int rc = 0;
    if (mtu > 0) {
        ifr.ifr_mtu = mtu;
        rc = ioctl(s, SIOCSIFMTU, &ifr);
    }
    if (rc == 0) rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(s);
    errno = saved;
    return rc;
}

int tunnat_sendmmsg(int fd, const struct tunnat_datagram *datagrams, unsigned int count) {
    enum { batch = 64 };
    struct mmsghdr msgs[batch];
    struct iovec iov[batch];
    struct sockaddr_in to[batch];
    if (count > batch) count = batch;
    memset(msgs, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        iov[i].iov_base = (void *)datagrams[i].bytes;
        iov[i].iov_len = datagrams[i].length;
        memset(&to[i], 0, sizeof to[i]);
        to[i].sin_family = AF_INET;
        to[i].sin_addr.s_addr = datagrams[i].destination;
        msgs[i].msg_hdr.msg_name = &to[i];
        msgs[i].msg_hdr.msg_namelen = sizeof to[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    return sendmmsg(fd, msgs, count, 0);
}

int tunnat_recvmmsg(int fd, struct tunnat_receive_slot *slots, unsigned int count) {
    enum { batch = 64 };
    struct mmsghdr msgs[batch];
    struct iovec iov[batch];
    struct sockaddr_in from[batch];
    if (count > batch) count = batch;
    memset(msgs, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        iov[i].iov_base = slots[i].bytes;
        iov[i].iov_len = slots[i].capacity;
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // MSG_TRUNC: each msg_len is the datagram's real length, as recvfrom(2) returns it (udp(7)).
    int n = recvmmsg(fd, msgs, count, MSG_DONTWAIT | MSG_TRUNC, NULL);
    for (int i = 0; i < n; i++) {
        slots[i].length = msgs[i].msg_len;
        slots[i].source_address = from[i].sin_addr.s_addr;
        slots[i].source_port = from[i].sin_port;
    }
    return n;
}

int tunnat_attach_filter(int fd, const struct sock_filter *program, unsigned short count) {
    struct sock_fprog fprog = { .len = count, .filter = (struct sock_filter *)program };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog);
}

int tunnat_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }

ssize_t tunnat_send_with_descriptor(int sock, const void *bytes, size_t length, int fd) {
    struct iovec iov = { .iov_base = (void *)bytes, .iov_len = length };
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                              .msg_controllen = sizeof control.space };
    struct cmsghdr *c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &message, MSG_NOSIGNAL);
}

int tunnat_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int tunnat_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int tunnat_spawn_actions_close_from(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int tunnat_unshare_network(void) { return unshare(CLONE_NEWNET); }

int tunnat_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int tunnat_name_thread(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

ssize_t tunnat_getrandom(void *buffer, size_t length) { return getrandom(buffer, length, 0); }

int tunnat_packet_sendmmsg(int fd, const struct tunnat_frame *frames, unsigned int count) {
    enum { batch = 64 };
    struct mmsghdr msgs[batch];
    struct iovec iov[batch][2];
    struct sockaddr_ll to[batch];
    if (count > batch) count = batch;
    memset(msgs, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        iov[i][0].iov_base = (void *)frames[i].prefix;
        iov[i][0].iov_len = frames[i].prefix_length;
        iov[i][1].iov_base = (void *)frames[i].bytes;
        iov[i][1].iov_len = frames[i].length;
        memset(&to[i], 0, sizeof to[i]);
        to[i].sll_family = AF_PACKET;
        to[i].sll_protocol = htons(ETH_P_IP);
        to[i].sll_ifindex = frames[i].ifindex;
        msgs[i].msg_hdr.msg_name = &to[i];
        msgs[i].msg_hdr.msg_namelen = sizeof to[i];
        msgs[i].msg_hdr.msg_iov = iov[i];
        msgs[i].msg_hdr.msg_iovlen = 2;
    }
    return sendmmsg(fd, msgs, count, MSG_DONTWAIT);
}

// ---- io_uring reads of a TUN queue (liburing 2.3 has no helper for the multishot read: set by hand) ----

#include <liburing.h>
#include <stdlib.h>
#include <poll.h>
#include <sys/mman.h>

enum { read_tag = 1, stop_tag = 2, buffer_group = 0, read_multishot = 49 /* IORING_OP_READ_MULTISHOT, 6.7 */ };

struct tunnat_read_ring {
    struct io_uring ring;
    struct io_uring_buf_ring *buffers;
    size_t buffers_size;
    unsigned char *base;
    size_t stride, offset;
    unsigned int length, count;
    int fd;
    unsigned int free;      // buffers the kernel may fill
    int read_armed;         // the multishot read is in flight
    int stopped;            // the stop poll fired: every wait returns at once from then on
    int stop_fd;
    int disabled;           // made with IORING_SETUP_R_DISABLED, not started yet
};

static void give_buffer(struct tunnat_read_ring *r, uint16_t id, int index) {
    io_uring_buf_ring_add(r->buffers, r->base + (size_t)id * r->stride + r->offset, r->length, id,
                          io_uring_buf_ring_mask(r->count), index);
}

// Queues the multishot read again when it is not in flight and a buffer is free; 0 or -errno of the submit.
static int arm_read(struct tunnat_read_ring *r) {
    if (r->read_armed || r->free == 0) return 0;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) return -EBUSY;
    io_uring_prep_rw(read_multishot, sqe, r->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffer_group;
    io_uring_sqe_set_data64(sqe, read_tag);
    r->read_armed = 1;
    int n = io_uring_submit(&r->ring);
    if (n < 0) { r->read_armed = 0; return n; }
    return 0;
}

struct tunnat_read_ring *tunnat_read_ring_open(int fd, int stop_fd, void *base, size_t stride, size_t offset,
                                               unsigned int length, unsigned int count) {
    if (count == 0 || count > 256 || (count & (count - 1)) != 0) { errno = EINVAL; return NULL; }
    struct tunnat_read_ring *r = calloc(1, sizeof *r);
    if (!r) { errno = ENOMEM; return NULL; }
    r->base = base; r->stride = stride; r->offset = offset; r->length = length; r->count = count; r->fd = fd;
    r->stop_fd = stop_fd;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    // Completions run in the reading thread when it asks (DEFER_TASKRUN, 6.1), not by interrupting it. That
    // thread is the ring's only submitter (SINGLE_ISSUER): the ring starts disabled and the thread that calls
    // tunnat_read_ring_start becomes it.
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_R_DISABLED | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = 2 * count + 8;
    int rc = io_uring_queue_init_params(4, &r->ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = 2 * count + 8;
        rc = io_uring_queue_init_params(4, &r->ring, &p);
    } else if (rc == 0) {
        r->disabled = 1;
    }
    if (rc < 0) { free(r); errno = -rc; return NULL; }
    r->buffers_size = count * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, r->buffers_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { int e = errno; io_uring_queue_exit(&r->ring); free(r); errno = e; return NULL; }
    r->buffers = mem;
    // A kernel before 6.7 has no multishot read: find out now, while falling back is still simple.
    struct io_uring_probe *probe = io_uring_get_probe_ring(&r->ring);
    int supported = probe && io_uring_opcode_supported(probe, read_multishot);
    if (probe) io_uring_free_probe(probe);
    if (!supported) { rc = -EINVAL; goto fail; }
    io_uring_buf_ring_init(r->buffers);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)r->buffers;
    reg.ring_entries = count;
    reg.bgid = buffer_group;
    rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
    if (rc < 0) goto fail;
    for (unsigned int i = 0; i < count; i++) give_buffer(r, (uint16_t)i, (int)i);
    io_uring_buf_ring_advance(r->buffers, (int)count);
    r->free = count;
    return r;
fail:
    io_uring_queue_exit(&r->ring);
    munmap(r->buffers, r->buffers_size);
    free(r);
    errno = -rc;
    return NULL;
}

int tunnat_read_ring_start(struct tunnat_read_ring *r) {
    if (r->disabled) {
        // io_uring_register(2) itself: liburing 2.3 declares io_uring_enable_rings but does not export it.
        if (syscall(__NR_io_uring_register, r->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) return -errno;
        r->disabled = 0;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) return -EBUSY;
    io_uring_prep_poll_add(sqe, r->stop_fd, POLLIN);
    io_uring_sqe_set_data64(sqe, stop_tag);
    return arm_read(r);
}

int tunnat_read_ring_wait(struct tunnat_read_ring *r, int timeout_ms) {
    if (io_uring_cq_ready(&r->ring) > 0) return 1;
    if (r->stopped) return 0;
    struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long long)(timeout_ms % 1000) * 1000000 };
    struct io_uring_cqe *cqe;
    int rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
    if (rc == -ETIME || rc == -EINTR) return 0;
    if (rc < 0) return rc;
    if (cqe->user_data == stop_tag) {
        r->stopped = 1;
        io_uring_cqe_seen(&r->ring, cqe);
        return io_uring_cq_ready(&r->ring) > 0;
    }
    return 1;
}

int tunnat_read_ring_take(struct tunnat_read_ring *r, uint16_t *ids, size_t *lengths, unsigned int max,
                          unsigned int *errors, int *last_error) {
    unsigned int n = 0;
    for (int pass = 0; pass < 2 && n < max; pass++) {
        // Nothing completed yet: run the deferred reads once (one io_uring_enter), then look again.
        if (pass == 1) {
            if (n > 0) break;
            io_uring_get_events(&r->ring);
        }
        struct io_uring_cqe *cqe;
        while (n < max && io_uring_peek_cqe(&r->ring, &cqe) == 0) {
            if (cqe->user_data == read_tag) {
                if (!(cqe->flags & IORING_CQE_F_MORE)) r->read_armed = 0;
                if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
                    ids[n] = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
                    lengths[n] = (size_t)cqe->res;
                    r->free--;
                    n++;
                } else if (cqe->res != -ENOBUFS) {
                    // A zero-length read holds a buffer too: hand it straight back.
                    if (cqe->flags & IORING_CQE_F_BUFFER) {
                        give_buffer(r, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT), 0);
                        io_uring_buf_ring_advance(r->buffers, 1);
                    }
                    if (cqe->res < 0) { (*errors)++; *last_error = -cqe->res; }
                }
            }
            else if (cqe->user_data == stop_tag) r->stopped = 1;  // the caller sees the stop through its own flag
            io_uring_cqe_seen(&r->ring, cqe);
        }
    }
    if (!r->read_armed) {
        int rc = arm_read(r);
        if (rc < 0) { (*errors)++; *last_error = -rc; }
    }
    return (int)n;
}

void tunnat_read_ring_release(struct tunnat_read_ring *r, const uint16_t *ids, unsigned int count) {
    for (unsigned int i = 0; i < count; i++) give_buffer(r, ids[i], (int)i);
    io_uring_buf_ring_advance(r->buffers, (int)count);
    r->free += count;
    if (!r->read_armed) arm_read(r);
}

void tunnat_read_ring_close(struct tunnat_read_ring *r) {
    io_uring_queue_exit(&r->ring);
    munmap(r->buffers, r->buffers_size);
    free(r);
}
