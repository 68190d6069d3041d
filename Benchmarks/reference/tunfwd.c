/* tunfwd: the reference TUN forwarder of scripts/bench-dataplane.sh: the least a TUN NAT must do, as a yardstick
 * for tunnat. A static 1:1 NAT between one private host and one public address, stateless: an IPv4 packet from
 * PRIVATE gets the source PUBLIC, a packet to PUBLIC gets the destination PRIVATE, everything else goes back
 * unchanged. It uses the data path tunnat uses with `tun.output: tun`: a TUN device with virtio-net headers and the
 * same offloads (checksum, TSO, USO, so GSO super-packets arrive whole and partial checksums stay partial), one read
 * and one write per packet back into the same device, the TTL raised by one to make up for the second pass through
 * the kernel's forwarding.
 *
 *   tunfwd DEVICE PRIVATE PUBLIC
 *
 * It creates DEVICE, sets its MTU to 1500, brings it up, turns off its rp_filter, prints "ready" and forwards until
 * it is killed. The routes into DEVICE are the caller's. Benchmark use only: no flow state, no filtering. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

enum { VNET = sizeof(struct virtio_net_hdr) }; /* 10 bytes, as tunnat's */

/* RFC 1624, eqn. 3: a checksum field after one 32-bit word of what it covers changed from `old` to `new`. `partial`:
 * the field holds a partial sum (virtio-net NEEDS_CSUM: the pseudo-header's sum, not complemented). */
static uint16_t adjust(uint16_t field, uint32_t old, uint32_t new, int partial) {
    uint32_t sum = partial ? field : (uint16_t)~field;
    sum += (uint16_t)~(old >> 16) + (uint16_t)~(old & 0xffff) + (new >> 16) + (new & 0xffff);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return partial ? (uint16_t)sum : (uint16_t)~sum;
}

/* Rewrites the address at `at` (network order) of the IPv4 packet `p` (length n) and every checksum covering it. */
static void rewrite(unsigned char *p, size_t n, const struct virtio_net_hdr *h, int at, uint32_t to) {
    size_t ihl = (size_t)(p[0] & 15) * 4;
    uint32_t old;
    memcpy(&old, p + at, 4);
    memcpy(p + at, &to, 4);
    uint16_t c;
    memcpy(&c, p + 10, 2);
    c = htons(adjust(ntohs(c), ntohl(old), ntohl(to), 0));
    memcpy(p + 10, &c, 2);
    int first = (p[6] & 0x1f) == 0 && p[7] == 0;
    int at_csum = p[9] == 6 ? 16 : p[9] == 17 ? 6 : -1;
    if (!first || at_csum < 0 || n < ihl + (size_t)at_csum + 2) return;
    memcpy(&c, p + ihl + at_csum, 2);
    int partial = h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
    if (p[9] == 17 && c == 0 && !partial) return; /* a UDP datagram without a checksum keeps none */
    c = htons(adjust(ntohs(c), ntohl(old), ntohl(to), partial));
    if (p[9] == 17 && c == 0 && !partial) c = 0xffff;
    memcpy(p + ihl + at_csum, &c, 2);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: tunfwd DEVICE PRIVATE PUBLIC\n");
        return 2;
    }
    uint32_t private, public;
    if (strlen(argv[1]) >= IFNAMSIZ || inet_pton(AF_INET, argv[2], &private) != 1 ||
        inet_pton(AF_INET, argv[3], &public) != 1) {
        fprintf(stderr, "tunfwd: DEVICE is a name of up to %d characters, PRIVATE and PUBLIC IPv4 addresses\n",
                IFNAMSIZ - 1);
        return 2;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) { perror("tunfwd: /dev/net/tun"); return 1; }
    struct ifreq ifr = {0};
    strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("tunfwd: TUNSETIFF"); return 1; }
    int size = VNET;
    if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) { perror("tunfwd: TUNSETVNETHDRSZ"); return 1; }
    /* tunnat's preferences, in its order: the first set the kernel accepts. */
    const unsigned offloads[] = {TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | 0x20 /* USO4 */ | 0x40 /* USO6 */,
                                 TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN, TUN_F_CSUM, 0};
    for (size_t i = 0; i < sizeof offloads / sizeof offloads[0]; i++)
        if (ioctl(fd, TUNSETOFFLOAD, offloads[i]) == 0) break;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifr.ifr_mtu = 1500;
    if (s < 0 || ioctl(s, SIOCSIFMTU, &ifr) < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) { perror("tunfwd: device"); return 1; }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) { perror("tunfwd: up"); return 1; }
    close(s);
    char path[96];
    snprintf(path, sizeof path, "/proc/sys/net/ipv4/conf/%s/rp_filter", argv[1]);
    int rp = open(path, O_WRONLY | O_CLOEXEC);
    if (rp < 0 || write(rp, "0", 1) != 1) { perror("tunfwd: rp_filter"); return 1; }
    close(rp);
    printf("ready\n");
    fflush(stdout);

    static unsigned char buffer[VNET + 65536];
    for (;;) {
        ssize_t got = read(fd, buffer, sizeof buffer);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            perror("tunfwd: read");
            return 1;
        }
        if (got < VNET + 20) continue;
        struct virtio_net_hdr h;
        memcpy(&h, buffer, VNET);
        unsigned char *p = buffer + VNET;
        size_t n = (size_t)got - VNET;
        if (p[0] >> 4 != 4) continue;
        uint32_t src, dst;
        memcpy(&src, p + 12, 4);
        memcpy(&dst, p + 16, 4);
        if (src == private) rewrite(p, n, &h, 12, public);
        else if (dst == public) rewrite(p, n, &h, 16, private);
        if (p[8] < 255) { /* TTL + 1; the checksum's word is TTL and protocol */
            uint16_t c, before = (uint16_t)(p[8] << 8 | p[9]);
            p[8]++;
            memcpy(&c, p + 10, 2);
            c = htons(adjust(ntohs(c), before, (uint32_t)(p[8] << 8 | p[9]), 0));
            memcpy(p + 10, &c, 2);
        }
        if (write(fd, buffer, (size_t)got) < 0 && errno != EINVAL && errno != EIO) {
            perror("tunfwd: write");
            return 1;
        }
    }
}
