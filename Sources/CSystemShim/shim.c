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
