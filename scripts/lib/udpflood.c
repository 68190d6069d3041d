/* udpflood: sends spoofed IPv4/UDP datagrams (a template payload, its last byte changed in each) from SRC to DST
 * at RATE packets a second for SECONDS, in batches of 64 (sendmmsg). For the sync-link flood test only: run it
 * inside a test namespace, towards a test namespace's address.
 *
 *   udpflood SRC_IP SRC_PORT DST_IP DST_PORT RATE SECONDS TEMPLATE_FILE [IFNAME DST_MAC]
 *
 * Without IFNAME, through a raw socket (IP_HDRINCL): the sender's kernel routes each datagram. With IFNAME, straight
 * onto that link to DST_MAC through a packet socket, bypassing the qdisc: no routing on the sending side, so one
 * core can send about twice as many (a veth peer's receive path runs on the sender's core either way).
 *
 * Prints "sent N in S s" on exit. Bounded: at most RATE * SECONDS datagrams, and SECONDS <= 60. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static unsigned short checksum(const void *data, int length) {
    const unsigned short *p = data;
    unsigned long sum = 0;
    for (; length > 1; length -= 2) sum += *p++;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned short)~sum;
}

int main(int argc, char **argv) {
    if (argc != 8 && argc != 10) {
        fprintf(stderr, "usage: udpflood SRC_IP SRC_PORT DST_IP DST_PORT RATE SECONDS TEMPLATE_FILE [IFNAME DST_MAC]\n");
        return 2;
    }
    double rate = atof(argv[5]), seconds = atof(argv[6]);
    if (rate <= 0 || rate > 5e6 || seconds <= 0 || seconds > 60) {
        fprintf(stderr, "udpflood: RATE 1..5000000, SECONDS up to 60\n");
        return 2;
    }
    unsigned char payload[1500];
    FILE *f = fopen(argv[7], "rb");
    if (!f) { perror("udpflood: template"); return 1; }
    size_t n = fread(payload, 1, sizeof payload - 28, f);
    fclose(f);
    if (n == 0) { fprintf(stderr, "udpflood: empty template\n"); return 1; }

    enum { BATCH = 64 };
    static unsigned char packets[BATCH][1500];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in dst = {.sin_family = AF_INET};
    inet_pton(AF_INET, argv[3], &dst.sin_addr);
    size_t length = 20 + 8 + n;
    for (int i = 0; i < BATCH; i++) {
        struct iphdr *ip = (struct iphdr *)packets[i];
        struct udphdr *udp = (struct udphdr *)(packets[i] + 20);
        ip->version = 4;
        ip->ihl = 5;
        ip->ttl = 64;
        ip->protocol = IPPROTO_UDP;
        ip->tot_len = htons(length);
        inet_pton(AF_INET, argv[1], &ip->saddr);
        ip->daddr = dst.sin_addr.s_addr;
        udp->source = htons(atoi(argv[2]));
        udp->dest = htons(atoi(argv[4]));
        udp->len = htons(8 + n);
        udp->check = 0; /* no checksum: allowed for IPv4 */
        ip->check = checksum(ip, 20);
        memcpy(packets[i] + 28, payload, n);
        iov[i] = (struct iovec){.iov_base = packets[i], .iov_len = length};
        msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &dst, .msg_namelen = sizeof dst, .msg_iov = &iov[i], .msg_iovlen = 1}};
    }
    int s;
    struct sockaddr_ll link = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_halen = 6};
    if (argc == 10) {
        link.sll_ifindex = (int)if_nametoindex(argv[8]);
        unsigned int mac[6];
        if (link.sll_ifindex == 0 || sscanf(argv[9], "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) != 6) {
            fprintf(stderr, "udpflood: no interface %s, or %s is not a MAC address\n", argv[8], argv[9]);
            return 2;
        }
        for (int i = 0; i < 6; i++) link.sll_addr[i] = (unsigned char)mac[i];
        s = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
        if (s < 0) { perror("udpflood: packet socket"); return 1; }
        int one = 1;
        setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
        for (int i = 0; i < BATCH; i++) {
            msgs[i].msg_hdr.msg_name = &link;
            msgs[i].msg_hdr.msg_namelen = sizeof link;
        }
    } else {
        s = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
        if (s < 0) { perror("udpflood: raw socket"); return 1; }
    }
    unsigned long long total = (unsigned long long)(rate * seconds), sent = 0, counter = 0;
    double start = now();
    while (sent < total && now() - start < seconds + 5) {
        double due = start + sent / rate;
        double wait = due - now();
        if (wait > 0) {
            struct timespec t = {.tv_sec = (time_t)wait, .tv_nsec = (long)((wait - (time_t)wait) * 1e9)};
            nanosleep(&t, NULL);
        }
        int batch = total - sent < BATCH ? (int)(total - sent) : BATCH;
        for (int i = 0; i < batch; i++) {
            counter++;
            packets[i][length - 1] = (unsigned char)counter;        /* the tag's last byte: never valid */
            memcpy(packets[i] + 28 + 32, &counter, sizeof counter); /* a new sequence (offset 32 of the message) */
        }
        int r = sendmmsg(s, msgs, batch, 0);
        if (r > 0) sent += r;
    }
    printf("sent %llu in %.3f s\n", sent, now() - start);
    return 0;
}
